/* emu.c - libaxcl_emu.so: an EMULATOR of the AXCL host runtime for AX650N
 * cards, with the same C ABI as libaxcl_rt.so for the calls axserve uses.
 *
 * It proves host logic without a card: device memory lives in a memfd
 * that is mapped PROT_NONE at the addresses handed to the host (so a host
 * dereference faults) and mapped again read-write for the emulator; interior
 * pointers into an allocation are valid device addresses; every memcpy kind
 * works; engine "axmodels" are this emulator's own format (axemu_format.h)
 * executed on the CPU by emu_exec.c. It counts every call and every byte
 * that would cross the bus, and keeps a modelled link timeline (axemu.h).
 *
 * Environment:
 *   AXCL_EMU_DEVICES=1,3      bus ids of the emulated cards (default "1")
 *   AXCL_EMU_CMM_MB=N         CMM per card in MiB (default 7040)
 *   AXCL_EMU_CMM_KB=N         the same in KiB (wins over _MB; for tests)
 *   AXCL_EMU_NO_DEVICE=1      axclInit fails with 0x8030010b, as the real
 *                             runtime does on a machine without the driver
 *   AXCL_EMU_LOSE_AFTER=N     after N engine executions the card "falls off
 *                             the bus": every call on it returns 0x80300181
 *   AXCL_EMU_STATS=FILE       JSON counters written at axclFinalize (or at
 *                             unload if the host never finalizes)
 *   AXCL_EMU_LATENCY_US=N     real sleep added to every bus call
 *   AXCL_EMU_NO_INTERIOR=1    buffer bindings must start an allocation (a
 *                             stricter runtime; tests the host fallbacks)
 *   AXCL_EMU_LINK=...         link model, see axemu.h
 * Error codes follow the runtime's scheme (0x80300000 | sub<<8 | id); the
 * codes named in the facts are used as such, the others are this
 * emulator's choices within the scheme (table below).
 * What it does not do: run vendor axmodels, model NPU timing in wall time,
 * or emulate more than one process. */

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "axemu.h"
#include "axemu_format.h"
#include "emu_int.h"

#define API __attribute__((visibility("default")))

/* ---- error codes ------------------------------------------------------
 *   0x80300101 invalid device id          (emulator's choice)
 *   0x80300103 runtime not initialised    (emulator's choice)
 *   0x8030010b no device at axclInit      (facts: real no-driver path)
 *   0x80300181 device not connected       (facts)
 *   0x80300202 invalid context            (emulator's choice)
 *   0x80300284 no context bound to thread (facts)
 *   0x80300301 invalid stream             (emulator's choice)
 *   0x80300501 invalid device pointer     (emulator's choice)
 *   0x80300502 invalid memcpy kind        (emulator's choice)
 *   0x80300504 out of CMM                 (emulator's choice)
 *   0x80300701 invalid engine argument    (emulator's choice)
 *   0x80300703 engine not initialised     (emulator's choice)
 *   0x80300705 model file rejected        (emulator's choice)
 *   0x8030070c engine execute failed      (facts) */
#define E_DEV_ID 0x80300101u
#define E_NOT_INIT 0x80300103u
#define E_NO_DEVICE 0x8030010bu
#define E_NOT_CONNECTED 0x80300181u
#define E_CTX 0x80300202u
#define E_NO_CTX 0x80300284u
#define E_STREAM 0x80300301u
#define E_PTR 0x80300501u
#define E_KIND 0x80300502u
#define E_NOMEM 0x80300504u
#define E_ARG 0x80300701u
#define E_ENGINE_INIT 0x80300703u
#define E_LOAD 0x80300705u
#define E_EXEC 0x8030070cu

#define MAX_DEV 8
#define MAX_MODELS 4096
#define ALIGN 128

/* ---- state ------------------------------------------------------------ */

struct blk {
    size_t off, size;
};

struct dev {
    int id;       /* bus id */
    int fd;       /* memfd backing the CMM */
    uint8_t *dva; /* PROT_NONE view: the addresses the host sees */
    uint8_t *rw;  /* emulator's read-write view of the same pages */
    size_t size;
    struct blk *blk; /* live allocations sorted by offset */
    size_t n_blk, cap_blk;
    int lost;
    int engine; /* axclrtEngineInit done */
    uint64_t execs;
    double dev_t; /* link model: device busy until (us) */
};

struct ctx {
    uint32_t magic;
    int dev; /* index into devs */
};
#define CTX_MAGIC 0xC7C7A001u

struct model {
    uint64_t id;
    int dev;
    struct axemu_header h;
    uint8_t *wdev; /* device address of the weights */
    int n_ctx;
};

struct io {
    uint32_t magic;
    struct model *m;
    const uint8_t *in[EMU_MAX_IO];
    uint64_t in_size[EMU_MAX_IO];
    uint8_t *out[EMU_MAX_IO];
    uint64_t out_size[EMU_MAX_IO];
};
#define IO_MAGIC 0x10A5E701u
#define INFO_MAGIC 0x1F0A5E70u

struct info {
    uint32_t magic;
    struct model *m;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int inited;
static struct dev devs[MAX_DEV];
static int n_devs;
static struct ctx implicit[MAX_DEV];
static struct model *models[MAX_MODELS];
static uint64_t lose_after; /* 0 = never */
static int no_interior;
static unsigned latency_us;
static struct axemu_stats st;
static struct axemu_link link_model = {150, 1800, 1500, 0};
static int stats_written;
static __thread struct ctx *cur;

static const char *const call_names[] = {
#define NAME(name, bus) #name,
    AXEMU_CALLS(NAME)
#undef NAME
};
static const int call_bus[] = {
#define BUS(name, bus) bus,
    AXEMU_CALLS(BUS)
#undef BUS
};

/* ---- counters and the link model ----------------------------------- */

static void sleep_us(unsigned us)
{
    struct timespec ts = {us / 1000000, (long)(us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Counts a call. Bus calls are modelled as synchronous: the host waits for
 * the card to drain its queue, then pays the latency and transfer time;
 * only an asynchronous execute returns without waiting for the card. */
static void count(enum axemu_call c, int dev, uint64_t bytes)
{
    st.calls[c]++;
    if (!call_bus[c])
        return;
    st.bus_calls++;
    double t = st.modelled_us;
    if (dev >= 0 && devs[dev].dev_t > t && c != AXEMU_C_axclrtEngineExecuteAsync)
        t = devs[dev].dev_t;
    t += link_model.lat_us;
    if (link_model.mbps > 0)
        t += (double)bytes / link_model.mbps; /* bytes / (MB/s) = us */
    st.modelled_us = t;
    if (latency_us)
        sleep_us(latency_us);
}

/* The device runs `us` of compute starting when both it and the call are
 * ready; a synchronous execute makes the host wait for it. */
static void model_exec(int dev, double us, int async)
{
    double start = st.modelled_us > devs[dev].dev_t ? st.modelled_us : devs[dev].dev_t;
    devs[dev].dev_t = start + us;
    if (!async)
        st.modelled_us = devs[dev].dev_t;
}

static void parse_link(const char *s)
{
    while (s && *s) {
        double v;
        char key[16];
        int n = 0;
        if (sscanf(s, "%15[a-z_]=%lf%n", key, &v, &n) != 2)
            break;
        if (!strcmp(key, "lat_us"))
            link_model.lat_us = v;
        else if (!strcmp(key, "layer_us"))
            link_model.layer_us = v;
        else if (!strcmp(key, "post_us"))
            link_model.post_us = v;
        else if (!strcmp(key, "mbps"))
            link_model.mbps = v;
        s += n;
        if (*s == ',')
            s++;
    }
}

static void write_stats(void)
{
    const char *path = getenv("AXCL_EMU_STATS");
    if (!path || !*path || stats_written)
        return;
    FILE *f = fopen(path, "w");
    if (!f)
        return;
    fprintf(f, "{\"emulator\": true, \"calls\": {");
    for (int i = 0; i < AXEMU_N_CALLS; i++)
        fprintf(f, "%s\"%s\": %llu", i ? ", " : "", call_names[i], (unsigned long long)st.calls[i]);
    fprintf(f,
            "}, \"bus_calls\": %llu, \"bytes\": {\"h2d\": %llu, \"d2h\": %llu, \"d2d\": %llu}, "
            "\"modelled_us\": %.1f}\n",
            (unsigned long long)st.bus_calls, (unsigned long long)st.h2d,
            (unsigned long long)st.d2h, (unsigned long long)st.d2d, st.modelled_us);
    fclose(f);
    stats_written = 1;
}

API const char *axclEmuInfo(void)
{
    return "axcl-emu 1.0 (emulator, not a real AX650N)";
}

API void axclEmuGetStats(struct axemu_stats *out)
{
    pthread_mutex_lock(&lock);
    *out = st;
    pthread_mutex_unlock(&lock);
}

API void axclEmuSetLink(const struct axemu_link *l)
{
    pthread_mutex_lock(&lock);
    link_model = *l;
    pthread_mutex_unlock(&lock);
}

/* ---- device memory ---------------------------------------------------- */

static int open_dev(struct dev *d, int id, size_t size)
{
    memset(d, 0, sizeof *d);
    d->id = id;
    d->size = size;
    d->fd = memfd_create("axcl-emu-cmm", MFD_CLOEXEC);
    if (d->fd < 0 || ftruncate(d->fd, (off_t)size) != 0)
        return -1;
    d->dva = mmap(NULL, size, PROT_NONE, MAP_SHARED, d->fd, 0);
    d->rw = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, d->fd, 0);
    if (d->dva == MAP_FAILED || d->rw == MAP_FAILED)
        return -1;
    return 0;
}

static void close_dev(struct dev *d)
{
    if (d->dva && d->dva != MAP_FAILED)
        munmap(d->dva, d->size);
    if (d->rw && d->rw != MAP_FAILED)
        munmap(d->rw, d->size);
    if (d->fd > 0)
        close(d->fd);
    emu_free(d->blk);
    memset(d, 0, sizeof *d);
}

static size_t used_bytes(const struct dev *d)
{
    size_t u = 0;
    for (size_t i = 0; i < d->n_blk; i++)
        u += d->blk[i].size;
    return u;
}

/* First fit. Returns the offset or (size_t)-1. */
static size_t dev_alloc(struct dev *d, size_t n)
{
    n = (n + ALIGN - 1) / ALIGN * ALIGN;
    if (n == 0)
        n = ALIGN;
    if (d->n_blk == d->cap_blk) {
        size_t cap = d->cap_blk ? d->cap_blk * 2 : 64;
        struct blk *b = emu_realloc(d->blk, cap * sizeof *b);
        if (!b)
            return (size_t)-1;
        d->blk = b;
        d->cap_blk = cap;
    }
    size_t at = 0, pos = 0;
    for (; pos < d->n_blk; pos++) {
        if (d->blk[pos].off - at >= n)
            break;
        at = d->blk[pos].off + d->blk[pos].size;
    }
    if (pos == d->n_blk && d->size - at < n)
        return (size_t)-1;
    memmove(&d->blk[pos + 1], &d->blk[pos], (d->n_blk - pos) * sizeof *d->blk);
    d->blk[pos].off = at;
    d->blk[pos].size = n;
    d->n_blk++;
    /* Fresh device memory holds garbage on a card: fill it with bf16 NaN
     * so a host that forgets to clear a cache sees poisoned results. */
    memset(d->rw + at, 0xff, n);
    return at;
}

static int dev_release(struct dev *d, size_t off)
{
    for (size_t i = 0; i < d->n_blk; i++) {
        if (d->blk[i].off == off) {
            fallocate(d->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off,
                      (off_t)d->blk[i].size);
            memmove(&d->blk[i], &d->blk[i + 1], (d->n_blk - i - 1) * sizeof *d->blk);
            d->n_blk--;
            return 0;
        }
    }
    return -1;
}

/* Which device owns this address (-1: none). */
static int dev_of(const void *p)
{
    for (int i = 0; i < n_devs; i++)
        if ((const uint8_t *)p >= devs[i].dva && (const uint8_t *)p < devs[i].dva + devs[i].size)
            return i;
    return -1;
}

/* The emulator's pointer for [p, p+n) on device d, or NULL if that range
 * is not inside one live allocation. Interior pointers are fine. */
static uint8_t *dev_ptr(int d, const void *p, size_t n)
{
    if (d < 0 || dev_of(p) != d)
        return NULL;
    size_t off = (size_t)((const uint8_t *)p - devs[d].dva);
    for (size_t i = 0; i < devs[d].n_blk; i++) {
        const struct blk *b = &devs[d].blk[i];
        if (off >= b->off && off < b->off + b->size)
            return (n <= b->off + b->size - off) ? devs[d].rw + off : NULL;
    }
    return NULL;
}

static int is_block_start(int d, const void *p)
{
    size_t off = (size_t)((const uint8_t *)p - devs[d].dva);
    for (size_t i = 0; i < devs[d].n_blk; i++)
        if (devs[d].blk[i].off == off)
            return 1;
    return 0;
}

/* ---- init, devices, contexts ----------------------------------------- */

static int cur_dev(uint32_t *err)
{
    if (!inited) {
        *err = E_NOT_INIT;
        return -1;
    }
    if (!cur || cur->magic != CTX_MAGIC) {
        *err = E_NO_CTX;
        return -1;
    }
    if (devs[cur->dev].lost) {
        *err = E_NOT_CONNECTED;
        return -1;
    }
    return cur->dev;
}

static int find_dev(int32_t id)
{
    for (int i = 0; i < n_devs; i++)
        if (devs[i].id == id)
            return i;
    return -1;
}

API int32_t axclInit(const char *config)
{
    (void)config;
    pthread_mutex_lock(&lock);
    count(AXEMU_C_axclInit, -1, 0);
    uint32_t r = 0;
    const char *nd = getenv("AXCL_EMU_NO_DEVICE");
    if (nd && *nd == '1') {
        r = E_NO_DEVICE;
    } else if (!inited) {
        const char *ids = getenv("AXCL_EMU_DEVICES");
        const char *mb = getenv("AXCL_EMU_CMM_MB");
        const char *la = getenv("AXCL_EMU_LOSE_AFTER");
        const char *lat = getenv("AXCL_EMU_LATENCY_US");
        const char *kb = getenv("AXCL_EMU_CMM_KB");
        size_t cmm = kb ? (size_t)strtoull(kb, NULL, 10) << 10
                        : (size_t)(mb ? strtoull(mb, NULL, 10) : 7040) << 20;
        lose_after = la ? strtoull(la, NULL, 10) : 0;
        const char *ni = getenv("AXCL_EMU_NO_INTERIOR");
        no_interior = ni && *ni == '1';
        latency_us = lat ? (unsigned)strtoul(lat, NULL, 10) : 0;
        parse_link(getenv("AXCL_EMU_LINK"));
        if (!ids || !*ids)
            ids = "1";
        n_devs = 0;
        for (const char *s = ids; *s && n_devs < MAX_DEV;) {
            char *end;
            long id = strtol(s, &end, 10);
            if (end == s || id < 0 || open_dev(&devs[n_devs], (int)id, cmm) != 0) {
                r = E_NO_DEVICE;
                break;
            }
            implicit[n_devs].magic = CTX_MAGIC;
            implicit[n_devs].dev = n_devs;
            n_devs++;
            s = *end == ',' ? end + 1 : end;
        }
        if (r == 0)
            inited = 1;
        else
            for (int i = 0; i < n_devs; i++)
                close_dev(&devs[i]);
    }
    pthread_mutex_unlock(&lock);
    return (int32_t)r;
}

static void unload_all(void)
{
    for (int i = 0; i < MAX_MODELS; i++) {
        emu_free(models[i]);
        models[i] = NULL;
    }
    for (int i = 0; i < n_devs; i++)
        close_dev(&devs[i]);
    n_devs = 0;
    inited = 0;
}

API int32_t axclFinalize(void)
{
    pthread_mutex_lock(&lock);
    count(AXEMU_C_axclFinalize, -1, 0);
    write_stats();
    unload_all();
    pthread_mutex_unlock(&lock);
    return 0;
}

__attribute__((destructor)) static void at_unload(void)
{
    write_stats();
    unload_all();
}

API int32_t axclSetLogLevel(int32_t level)
{
    pthread_mutex_lock(&lock);
    count(AXEMU_C_axclSetLogLevel, -1, 0);
    pthread_mutex_unlock(&lock);
    return level < 0 || level > 6 ? (int32_t)E_ARG : 0;
}

API int32_t axclrtGetVersion(int32_t *major, int32_t *minor, int32_t *patch)
{
    pthread_mutex_lock(&lock);
    count(AXEMU_C_axclrtGetVersion, -1, 0);
    pthread_mutex_unlock(&lock);
    if (!major || !minor || !patch)
        return (int32_t)E_ARG;
    /* Reports the runtime release whose ABI it follows. */
    *major = 3;
    *minor = 10;
    *patch = 2;
    return 0;
}

API const char *axclrtGetSocName(void)
{
    pthread_mutex_lock(&lock);
    count(AXEMU_C_axclrtGetSocName, -1, 0);
    pthread_mutex_unlock(&lock);
    return "AX650N (axcl-emu)";
}

struct devlist {
    uint32_t num;
    int32_t devices[256];
};

API int32_t axclrtGetDeviceList(struct devlist *l)
{
    pthread_mutex_lock(&lock);
    count(AXEMU_C_axclrtGetDeviceList, -1, 0);
    uint32_t r = inited ? 0 : E_NOT_INIT;
    if (!l)
        r = E_ARG;
    if (!r) {
        memset(l, 0, sizeof *l);
        for (int i = 0; i < n_devs; i++)
            l->devices[l->num++] = devs[i].id;
    }
    pthread_mutex_unlock(&lock);
    return (int32_t)r;
}

API int32_t axclrtGetDeviceCount(uint32_t *n)
{
    pthread_mutex_lock(&lock);
    count(AXEMU_C_axclrtGetDeviceCount, -1, 0);
    uint32_t r = inited ? 0 : E_NOT_INIT;
    if (!r && n)
        *n = (uint32_t)n_devs;
    pthread_mutex_unlock(&lock);
    return (int32_t)r;
}

API int32_t axclrtSetDevice(int32_t id)
{
    pthread_mutex_lock(&lock);
    int d = find_dev(id);
    count(AXEMU_C_axclrtSetDevice, d, 0);
    uint32_t r = !inited ? E_NOT_INIT : d < 0 ? E_DEV_ID : devs[d].lost ? E_NOT_CONNECTED : 0;
    if (!r)
        cur = &implicit[d]; /* the thread's implicit context */
    pthread_mutex_unlock(&lock);
    return (int32_t)r;
}

API int32_t axclrtResetDevice(int32_t id)
{
    pthread_mutex_lock(&lock);
    int d = find_dev(id);
    count(AXEMU_C_axclrtResetDevice, d, 0);
    uint32_t r = !inited ? E_NOT_INIT : d < 0 ? E_DEV_ID : 0;
    if (!r) {
        /* Releases what the process still holds on the card. */
        for (int i = 0; i < MAX_MODELS; i++)
            if (models[i] && models[i]->dev == d) {
                emu_free(models[i]);
                models[i] = NULL;
            }
        while (devs[d].n_blk)
            dev_release(&devs[d], devs[d].blk[0].off);
        devs[d].engine = 0;
        if (cur && cur->dev == d)
            cur = NULL;
    }
    pthread_mutex_unlock(&lock);
    return (int32_t)r;
}

struct devprops {
    char sw_version[64];
    uint64_t uid;
    uint32_t pci_domain, pci_bus_id, pci_device_id;
    int32_t temperature;
    uint32_t total_mem_kb, free_mem_kb, total_cmm_kb, free_cmm_kb;
    uint32_t cpu_loading, npu_loading;
    uint32_t reserved[32];
};
_Static_assert(sizeof(struct devprops) == 240, "device properties are 240 bytes");

API int32_t axclrtGetDeviceProperties(int32_t id, struct devprops *p)
{
    pthread_mutex_lock(&lock);
    int d = find_dev(id);
    count(AXEMU_C_axclrtGetDeviceProperties, d, 0);
    uint32_t r = !inited ? E_NOT_INIT : d < 0 ? E_DEV_ID : devs[d].lost ? E_NOT_CONNECTED : 0;
    if (!r && !p)
        r = E_ARG;
    if (!r) {
        memset(p, 0, sizeof *p);
        snprintf(p->sw_version, sizeof p->sw_version, "V3.10.2-emu");
        p->uid = 0xE300000000ull + (uint64_t)devs[d].id;
        p->pci_bus_id = (uint32_t)devs[d].id;
        p->pci_device_id = 0x0650;
        p->temperature = 45000; /* millidegrees, as axcl-smi prints */
        p->total_mem_kb = 1u << 20;
        p->free_mem_kb = 1u << 19;
        p->total_cmm_kb = (uint32_t)(devs[d].size >> 10);
        p->free_cmm_kb = (uint32_t)((devs[d].size - used_bytes(&devs[d])) >> 10);
    }
    pthread_mutex_unlock(&lock);
    return (int32_t)r;
}

API int32_t AXCL_SYS_MemQueryStatus(uint32_t *status)
{
    pthread_mutex_lock(&lock);
    uint32_t e = 0;
    int d = cur_dev(&e);
    count(AXEMU_C_AXCL_SYS_MemQueryStatus, d, 0);
    if (!e && !status)
        e = E_ARG;
    if (!e) {
        /* {TotalSize, RemainSize, BlockCnt} in KiB; the tail is left alone. */
        status[0] = (uint32_t)(devs[d].size >> 10);
        status[1] = (uint32_t)((devs[d].size - used_bytes(&devs[d])) >> 10);
        status[2] = (uint32_t)devs[d].n_blk;
    }
    pthread_mutex_unlock(&lock);
    return (int32_t)e;
}

API int32_t axclrtCreateContext(void **c, int32_t id)
{
    pthread_mutex_lock(&lock);
    int d = find_dev(id);
    count(AXEMU_C_axclrtCreateContext, d, 0);
    uint32_t r = !inited ? E_NOT_INIT : d < 0 ? E_DEV_ID : devs[d].lost ? E_NOT_CONNECTED : 0;
    if (!r && !c)
        r = E_ARG;
    if (!r) {
        struct ctx *x = emu_calloc(1, sizeof *x);
        if (!x) {
            r = E_NOMEM;
        } else {
            x->magic = CTX_MAGIC;
            x->dev = d;
            *c = x;
            cur = x;
        }
    }
    pthread_mutex_unlock(&lock);
    return (int32_t)r;
}

API int32_t axclrtSetCurrentContext(void *c)
{
    pthread_mutex_lock(&lock);
    count(AXEMU_C_axclrtSetCurrentContext, -1, 0);
    struct ctx *x = c;
    uint32_t r = !inited ? E_NOT_INIT : (!x || x->magic != CTX_MAGIC) ? E_CTX : 0;
    if (!r)
        cur = x;
    pthread_mutex_unlock(&lock);
    return (int32_t)r;
}

API int32_t axclrtDestroyContext(void *c)
{
    pthread_mutex_lock(&lock);
    struct ctx *x = c;
    uint32_t r = (!x || x->magic != CTX_MAGIC) ? E_CTX : 0;
    count(AXEMU_C_axclrtDestroyContext, r ? -1 : x->dev, 0);
    if (!r) {
        if (cur == x)
            cur = NULL;
        x->magic = 0;
        emu_free(x);
    }
    pthread_mutex_unlock(&lock);
    return (int32_t)r;
}

/* ---- memory calls ----------------------------------------------------- */

static int32_t do_malloc(enum axemu_call c, void **p, size_t n)
{
    pthread_mutex_lock(&lock);
    uint32_t r = 0;
    int d = cur_dev(&r);
    count(c, d, 0);
    if (!r && (!p || n == 0))
        r = E_ARG;
    if (!r) {
        size_t off = dev_alloc(&devs[d], n);
        if (off == (size_t)-1)
            r = E_NOMEM;
        else
            *p = devs[d].dva + off;
    }
    pthread_mutex_unlock(&lock);
    return (int32_t)r;
}

API int32_t axclrtMalloc(void **p, size_t n, int32_t policy)
{
    (void)policy;
    return do_malloc(AXEMU_C_axclrtMalloc, p, n);
}

API int32_t axclrtMallocCached(void **p, size_t n, int32_t policy)
{
    (void)policy;
    return do_malloc(AXEMU_C_axclrtMallocCached, p, n);
}

API int32_t axclrtFree(void *p)
{
    pthread_mutex_lock(&lock);
    uint32_t r = 0;
    int d = cur_dev(&r);
    count(AXEMU_C_axclrtFree, d, 0);
    if (!r) {
        if (dev_of(p) != d || dev_release(&devs[d], (size_t)((uint8_t *)p - devs[d].dva)) != 0)
            r = E_PTR;
    }
    pthread_mutex_unlock(&lock);
    return (int32_t)r;
}

API int32_t axclrtMallocHost(void **p, size_t n)
{
    pthread_mutex_lock(&lock);
    count(AXEMU_C_axclrtMallocHost, -1, 0);
    uint32_t r = !inited ? E_NOT_INIT : (!p || !n) ? E_ARG : 0;
    if (!r && !(*p = emu_calloc(1, n)))
        r = E_NOMEM;
    pthread_mutex_unlock(&lock);
    return (int32_t)r;
}

API int32_t axclrtFreeHost(void *p)
{
    pthread_mutex_lock(&lock);
    count(AXEMU_C_axclrtFreeHost, -1, 0);
    emu_free(p);
    pthread_mutex_unlock(&lock);
    return 0;
}

API int32_t axclrtMemset(void *p, uint8_t v, size_t n)
{
    pthread_mutex_lock(&lock);
    uint32_t r = 0;
    int d = cur_dev(&r);
    count(AXEMU_C_axclrtMemset, d, 0);
    uint8_t *q = r ? NULL : dev_ptr(d, p, n);
    if (!r && !q)
        r = E_PTR;
    if (!r)
        memset(q, v, n);
    pthread_mutex_unlock(&lock);
    return (int32_t)r;
}

API int32_t axclrtMemcpy(void *dst, const void *src, size_t n, int32_t kind)
{
    pthread_mutex_lock(&lock);
    uint32_t r = 0;
    int d = cur_dev(&r);
    /* Only host<->device bytes cross the link; D2D stays on the card. */
    count(AXEMU_C_axclrtMemcpy, d, (kind == 1 || kind == 2) ? n : 0);
    if (!r && (!dst || !src))
        r = E_ARG;
    if (!r) {
        uint8_t *qd = NULL;
        const uint8_t *qs = NULL;
        switch (kind) {
        case 0: /* H2H */
            if (dev_of(dst) >= 0 || dev_of(src) >= 0)
                r = E_PTR;
            qd = dst;
            qs = src;
            break;
        case 1: /* H2D */
            qd = dev_ptr(d, dst, n);
            qs = src;
            if (!qd || dev_of(src) >= 0)
                r = E_PTR;
            st.h2d += n;
            break;
        case 2: /* D2H */
            qs = dev_ptr(d, src, n);
            qd = dst;
            if (!qs || dev_of(dst) >= 0)
                r = E_PTR;
            st.d2h += n;
            break;
        case 3: /* D2D */
            qd = dev_ptr(d, dst, n);
            qs = dev_ptr(d, src, n);
            if (!qd || !qs)
                r = E_PTR;
            st.d2d += n;
            break;
        default:
            r = E_KIND;
        }
        if (!r)
            memmove(qd, qs, n);
    }
    pthread_mutex_unlock(&lock);
    return (int32_t)r;
}

/* ---- streams (in-order; the emulator runs work at call time) ---------- */

struct stream {
    uint32_t magic;
    int dev;
};
#define STREAM_MAGIC 0x57EA4001u

API int32_t axclrtCreateStream(void **s)
{
    pthread_mutex_lock(&lock);
    uint32_t r = 0;
    int d = cur_dev(&r);
    count(AXEMU_C_axclrtCreateStream, d, 0);
    if (!r && !s)
        r = E_ARG;
    if (!r) {
        struct stream *x = emu_calloc(1, sizeof *x);
        if (!x) {
            r = E_NOMEM;
        } else {
            x->magic = STREAM_MAGIC;
            x->dev = d;
            *s = x;
        }
    }
    pthread_mutex_unlock(&lock);
    return (int32_t)r;
}

API int32_t axclrtDestroyStream(void *s)
{
    pthread_mutex_lock(&lock);
    struct stream *x = s;
    uint32_t r = (!x || x->magic != STREAM_MAGIC) ? E_STREAM : 0;
    count(AXEMU_C_axclrtDestroyStream, r ? -1 : x->dev, 0);
    if (!r) {
        x->magic = 0;
        emu_free(x);
    }
    pthread_mutex_unlock(&lock);
    return (int32_t)r;
}

API int32_t axclrtSynchronizeStream(void *s)
{
    pthread_mutex_lock(&lock);
    struct stream *x = s;
    uint32_t r = 0;
    int d = cur_dev(&r);
    if (!r && (!x || x->magic != STREAM_MAGIC || x->dev != d))
        r = E_STREAM;
    count(AXEMU_C_axclrtSynchronizeStream, d, 0);
    pthread_mutex_unlock(&lock);
    return (int32_t)r;
}

/* ---- engine: models, IO info, IO sets --------------------------------- */

API int32_t axclrtEngineInit(int32_t kind)
{
    pthread_mutex_lock(&lock);
    uint32_t r = 0;
    int d = cur_dev(&r);
    count(AXEMU_C_axclrtEngineInit, d, 0);
    if (!r && (kind < 0 || kind > 3))
        r = E_ARG;
    if (!r)
        devs[d].engine = 1;
    pthread_mutex_unlock(&lock);
    return (int32_t)r;
}

API int32_t axclrtEngineFinalize(void)
{
    pthread_mutex_lock(&lock);
    uint32_t r = 0;
    int d = cur_dev(&r);
    count(AXEMU_C_axclrtEngineFinalize, d, 0);
    if (!r)
        devs[d].engine = 0;
    pthread_mutex_unlock(&lock);
    return (int32_t)r;
}

static struct model *find_model(uint64_t id)
{
    if (id < 1 || id > MAX_MODELS)
        return NULL;
    return models[id - 1];
}

/* Reads and checks a model file; loads the weights into device memory. */
static uint32_t load_file(int d, const char *path, uint64_t *out)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return E_LOAD;
    struct model *m = emu_calloc(1, sizeof *m);
    uint32_t r = 0;
    if (!m || fread(&m->h, sizeof m->h, 1, f) != 1 || emu_check_header(&m->h) != 0)
        r = E_LOAD;
    uint64_t nb = r ? 0 : axemu_weight_count(&m->h) * 2;
    if (!r && (m->h.weights_size != nb || m->h.weights_offset != AXEMU_HEADER_SIZE))
        r = E_LOAD;
    size_t off = (size_t)-1;
    if (!r) {
        off = dev_alloc(&devs[d], nb);
        if (off == (size_t)-1)
            r = E_NOMEM;
    }
    if (!r && fread(devs[d].rw + off, 1, nb, f) != nb)
        r = E_LOAD;
    int slot = -1;
    for (int i = 0; !r && i < MAX_MODELS; i++)
        if (!models[i]) {
            slot = i;
            break;
        }
    if (!r && slot < 0)
        r = E_NOMEM;
    fclose(f);
    if (r) {
        if (off != (size_t)-1)
            dev_release(&devs[d], off);
        emu_free(m);
        return r;
    }
    m->id = (uint64_t)slot + 1;
    m->dev = d;
    m->wdev = devs[d].dva + off;
    models[slot] = m;
    *out = m->id;
    return 0;
}

API int32_t axclrtEngineLoadFromFile(const char *path, uint64_t *model)
{
    pthread_mutex_lock(&lock);
    uint32_t r = 0;
    int d = cur_dev(&r);
    count(AXEMU_C_axclrtEngineLoadFromFile, d, 0);
    if (!r && !devs[d].engine)
        r = E_ENGINE_INIT;
    if (!r && (!path || !model))
        r = E_ARG;
    if (!r)
        r = load_file(d, path, model);
    pthread_mutex_unlock(&lock);
    return (int32_t)r;
}

API int32_t axclrtEngineUnload(uint64_t id)
{
    pthread_mutex_lock(&lock);
    uint32_t r = 0;
    int d = cur_dev(&r);
    count(AXEMU_C_axclrtEngineUnload, d, 0);
    struct model *m = find_model(id);
    if (!r && (!m || m->dev != d))
        r = E_ARG;
    if (!r) {
        dev_release(&devs[d], (size_t)(m->wdev - devs[d].dva));
        models[id - 1] = NULL;
        emu_free(m);
    }
    pthread_mutex_unlock(&lock);
    return (int32_t)r;
}

API int32_t axclrtEngineGetUsageFromModelId(uint64_t id, int64_t *sys, int64_t *cmm)
{
    pthread_mutex_lock(&lock);
    uint32_t r = 0;
    int d = cur_dev(&r);
    count(AXEMU_C_axclrtEngineGetUsageFromModelId, d, 0);
    struct model *m = find_model(id);
    if (!r && (!m || !sys || !cmm))
        r = E_ARG;
    if (!r) {
        *sys = 64 << 10;
        *cmm = (int64_t)m->h.weights_size;
    }
    pthread_mutex_unlock(&lock);
    return (int32_t)r;
}

/* Reads the header only: what loading the file would take. */
API int32_t axclrtEngineGetUsage(const char *path, int64_t *sys, int64_t *cmm)
{
    pthread_mutex_lock(&lock);
    count(AXEMU_C_axclrtEngineGetUsage, -1, 0);
    struct axemu_header h;
    FILE *f = path ? fopen(path, "rb") : NULL;
    uint32_t r = (f && sys && cmm && fread(&h, sizeof h, 1, f) == 1 && emu_check_header(&h) == 0)
                     ? 0
                     : E_LOAD;
    if (f)
        fclose(f);
    if (!r) {
        *sys = 64 << 10;
        *cmm = (int64_t)axemu_weight_count(&h) * 2;
    }
    pthread_mutex_unlock(&lock);
    return (int32_t)r;
}

API int32_t axclrtEngineCreateContext(uint64_t id, uint64_t *ctx)
{
    pthread_mutex_lock(&lock);
    uint32_t r = 0;
    int d = cur_dev(&r);
    count(AXEMU_C_axclrtEngineCreateContext, d, 0);
    struct model *m = find_model(id);
    if (!r && (!m || m->dev != d || !ctx))
        r = E_ARG;
    if (!r)
        *ctx = (id << 16) | (uint64_t)(++m->n_ctx);
    pthread_mutex_unlock(&lock);
    return (int32_t)r;
}

API int32_t axclrtEngineGetIOInfo(uint64_t id, void **out)
{
    pthread_mutex_lock(&lock);
    uint32_t r = 0;
    int d = cur_dev(&r);
    count(AXEMU_C_axclrtEngineGetIOInfo, d, 0);
    struct model *m = find_model(id);
    if (!r && (!m || !out))
        r = E_ARG;
    if (!r) {
        struct info *i = emu_calloc(1, sizeof *i);
        if (!i) {
            r = E_NOMEM;
        } else {
            i->magic = INFO_MAGIC;
            i->m = m;
            *out = i;
        }
    }
    pthread_mutex_unlock(&lock);
    return (int32_t)r;
}

static struct model *info_model(void *p)
{
    struct info *i = p;
    return (i && i->magic == INFO_MAGIC) ? i->m : NULL;
}

API int32_t axclrtEngineDestroyIOInfo(void *p)
{
    pthread_mutex_lock(&lock);
    count(AXEMU_C_axclrtEngineDestroyIOInfo, -1, 0);
    struct info *i = p;
    uint32_t r = info_model(p) ? 0 : E_ARG;
    if (!r) {
        i->magic = 0;
        emu_free(i);
    }
    pthread_mutex_unlock(&lock);
    return (int32_t)r;
}

API int32_t axclrtEngineGetShapeGroupsCount(void *p, int32_t *n)
{
    pthread_mutex_lock(&lock);
    count(AXEMU_C_axclrtEngineGetShapeGroupsCount, -1, 0);
    struct model *m = info_model(p);
    if (m && n)
        *n = (int32_t)m->h.n_groups;
    pthread_mutex_unlock(&lock);
    return m && n ? 0 : (int32_t)E_ARG;
}

API uint32_t axclrtEngineGetNumInputs(void *p)
{
    pthread_mutex_lock(&lock);
    count(AXEMU_C_axclrtEngineGetNumInputs, -1, 0);
    struct model *m = info_model(p);
    pthread_mutex_unlock(&lock);
    return m ? (uint32_t)emu_n_inputs(&m->h) : 0;
}

API uint32_t axclrtEngineGetNumOutputs(void *p)
{
    pthread_mutex_lock(&lock);
    count(AXEMU_C_axclrtEngineGetNumOutputs, -1, 0);
    struct model *m = info_model(p);
    pthread_mutex_unlock(&lock);
    return m ? (uint32_t)emu_n_outputs(&m->h) : 0;
}

API const char *axclrtEngineGetInputNameByIndex(void *p, uint32_t i)
{
    pthread_mutex_lock(&lock);
    count(AXEMU_C_axclrtEngineGetInputNameByIndex, -1, 0);
    struct model *m = info_model(p);
    pthread_mutex_unlock(&lock);
    return m ? emu_io_name(&m->h, 0, i) : NULL;
}

API const char *axclrtEngineGetOutputNameByIndex(void *p, uint32_t i)
{
    pthread_mutex_lock(&lock);
    count(AXEMU_C_axclrtEngineGetOutputNameByIndex, -1, 0);
    struct model *m = info_model(p);
    pthread_mutex_unlock(&lock);
    return m ? emu_io_name(&m->h, 1, i) : NULL;
}

API uint64_t axclrtEngineGetInputSizeByIndex(void *p, uint32_t g, uint32_t i)
{
    pthread_mutex_lock(&lock);
    count(AXEMU_C_axclrtEngineGetInputSizeByIndex, -1, 0);
    struct model *m = info_model(p);
    pthread_mutex_unlock(&lock);
    return m ? emu_io_size(&m->h, 0, g, i) : 0;
}

API uint64_t axclrtEngineGetOutputSizeByIndex(void *p, uint32_t g, uint32_t i)
{
    pthread_mutex_lock(&lock);
    count(AXEMU_C_axclrtEngineGetOutputSizeByIndex, -1, 0);
    struct model *m = info_model(p);
    pthread_mutex_unlock(&lock);
    return m ? emu_io_size(&m->h, 1, g, i) : 0;
}

API int32_t axclrtEngineGetInputDataType(void *p, uint32_t i, int32_t *type)
{
    pthread_mutex_lock(&lock);
    count(AXEMU_C_axclrtEngineGetInputDataType, -1, 0);
    struct model *m = info_model(p);
    uint32_t r = (m && type && i < (uint32_t)emu_n_inputs(&m->h)) ? 0 : E_ARG;
    if (!r)
        *type = emu_io_dtype(&m->h, 0, i);
    pthread_mutex_unlock(&lock);
    return (int32_t)r;
}

API int32_t axclrtEngineCreateIO(void *p, void **out)
{
    pthread_mutex_lock(&lock);
    count(AXEMU_C_axclrtEngineCreateIO, -1, 0);
    struct model *m = info_model(p);
    uint32_t r = (m && out) ? 0 : E_ARG;
    if (!r) {
        struct io *io = emu_calloc(1, sizeof *io);
        if (!io) {
            r = E_NOMEM;
        } else {
            io->magic = IO_MAGIC;
            io->m = m;
            *out = io;
        }
    }
    pthread_mutex_unlock(&lock);
    return (int32_t)r;
}

API int32_t axclrtEngineDestroyIO(void *p)
{
    pthread_mutex_lock(&lock);
    count(AXEMU_C_axclrtEngineDestroyIO, -1, 0);
    struct io *io = p;
    uint32_t r = (io && io->magic == IO_MAGIC) ? 0 : E_ARG;
    if (!r) {
        io->magic = 0;
        emu_free(io);
    }
    pthread_mutex_unlock(&lock);
    return (int32_t)r;
}

/* Binding is bookkeeping: the address is checked to be device memory of
 * the model's card, and its extent is checked at execution. */
static int32_t bind(enum axemu_call c, void *p, uint32_t i, const void *buf, uint64_t size, int out)
{
    pthread_mutex_lock(&lock);
    count(c, -1, 0);
    struct io *io = p;
    uint32_t r = (io && io->magic == IO_MAGIC) ? 0 : E_ARG;
    if (!r && i >= (uint32_t)(out ? emu_n_outputs(&io->m->h) : emu_n_inputs(&io->m->h)))
        r = E_ARG;
    if (!r && (dev_of(buf) != io->m->dev || !size))
        r = E_PTR;
    if (!r && no_interior && !is_block_start(io->m->dev, buf))
        r = E_PTR;
    if (!r) {
        if (out) {
            io->out[i] = (uint8_t *)buf;
            io->out_size[i] = size;
        } else {
            io->in[i] = buf;
            io->in_size[i] = size;
        }
    }
    pthread_mutex_unlock(&lock);
    return (int32_t)r;
}

API int32_t axclrtEngineSetInputBufferByIndex(void *io, uint32_t i, const void *buf, uint64_t size)
{
    return bind(AXEMU_C_axclrtEngineSetInputBufferByIndex, io, i, buf, size, 0);
}

API int32_t axclrtEngineSetOutputBufferByIndex(void *io, uint32_t i, const void *buf, uint64_t size)
{
    return bind(AXEMU_C_axclrtEngineSetOutputBufferByIndex, io, i, buf, size, 1);
}

/* ---- execution --------------------------------------------------------- */

static uint32_t execute(enum axemu_call c, uint64_t id, uint64_t ctx, uint32_t g, void *p,
                        void *stream)
{
    uint32_t r = 0;
    int d = cur_dev(&r);
    count(c, d, 0);
    if (r)
        return r;
    struct model *m = find_model(id);
    struct io *io = p;
    if (!m || m->dev != d || (ctx >> 16) != id || !io || io->magic != IO_MAGIC || io->m != m ||
        g >= m->h.n_groups)
        return E_ARG;
    if (stream &&
        (((struct stream *)stream)->magic != STREAM_MAGIC || ((struct stream *)stream)->dev != d))
        return E_STREAM;
    const uint8_t *in[EMU_MAX_IO];
    uint8_t *out[EMU_MAX_IO];
    int ni = emu_n_inputs(&m->h), no = emu_n_outputs(&m->h);
    for (int i = 0; i < ni; i++) {
        uint64_t need = emu_io_size(&m->h, 0, g, (uint32_t)i);
        in[i] = io->in[i] && io->in_size[i] >= need ? dev_ptr(d, io->in[i], need) : NULL;
        if (!in[i])
            return E_EXEC; /* unbound, too small, or not live device memory */
    }
    for (int i = 0; i < no; i++) {
        uint64_t need = emu_io_size(&m->h, 1, g, (uint32_t)i);
        out[i] = io->out[i] && io->out_size[i] >= need ? dev_ptr(d, io->out[i], need) : NULL;
        if (!out[i])
            return E_EXEC;
    }
    const uint8_t *w = dev_ptr(d, m->wdev, m->h.weights_size);
    if (!w || emu_run(&m->h, (const uint16_t *)w, (int)g, in, out) != 0)
        return E_EXEC;
    model_exec(d, m->h.kind == AXEMU_KIND_POST ? link_model.post_us : link_model.layer_us,
               stream != NULL);
    if (lose_after && ++devs[d].execs >= lose_after)
        devs[d].lost = 1; /* the next call on this card fails */
    return 0;
}

API int32_t axclrtEngineExecute(uint64_t id, uint64_t ctx, uint32_t g, void *io)
{
    pthread_mutex_lock(&lock);
    uint32_t r = execute(AXEMU_C_axclrtEngineExecute, id, ctx, g, io, NULL);
    pthread_mutex_unlock(&lock);
    return (int32_t)r;
}

API int32_t axclrtEngineExecuteAsync(uint64_t id, uint64_t ctx, uint32_t g, void *io, void *stream)
{
    pthread_mutex_lock(&lock);
    uint32_t r =
        stream ? execute(AXEMU_C_axclrtEngineExecuteAsync, id, ctx, g, io, stream) : E_STREAM;
    pthread_mutex_unlock(&lock);
    return (int32_t)r;
}
