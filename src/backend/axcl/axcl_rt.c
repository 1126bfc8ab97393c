/* axcl_rt.c - finds the AXCL runtime at run time, resolves every call we
 * use into struct axcl_rt, and runs axclInit/axclFinalize once per process.
 *
 * Search order: $AXSERVE_AXCL_LIB (a libaxcl_rt.so or a drop-in such as the
 * emulator), the ld cache ("libaxcl_rt.so"), then /usr/lib/axcl. The vendor
 * libraries have unversioned SONAMEs and no RPATH, so when the ld cache does
 * not know /usr/lib/axcl, their dependencies are preloaded with RTLD_GLOBAL
 * in dependency order before the runtime itself. Nothing here needs
 * `source /etc/profile`. This file does not touch devices or models. */
#include "backend/axcl/axcl_rt.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"

#define VENDOR_DIR "/usr/lib/axcl"

/* Dependency order of libaxcl_rt.so (facts: spdlog, token, pcie_msg,
 * pcie_dma, comm, pkg, logger, then rt). */
static const char *const vendor_deps[] = {
    "libspdlog.so.1.14", "libaxcl_token.so", "libaxcl_pcie_msg.so", "libaxcl_pcie_dma.so",
    "libaxcl_comm.so",   "libaxcl_pkg.so",   "libaxcl_logger.so",
};
#define N_DEPS (sizeof vendor_deps / sizeof vendor_deps[0])

/* ---- symbol table ---------------------------------------------------- */

struct sym {
    const char *name;
    size_t off; /* offset of the function pointer in struct axcl_rt */
    int required;
};

#define REQ(field, name)                                                                           \
    {                                                                                              \
        name, offsetof(struct axcl_rt, field), 1                                                   \
    }
#define OPT(field, name)                                                                           \
    {                                                                                              \
        name, offsetof(struct axcl_rt, field), 0                                                   \
    }
static const struct sym syms[] = {
    REQ(Init, "axclInit"),
    REQ(Finalize, "axclFinalize"),
    REQ(GetVersion, "axclrtGetVersion"),
    REQ(GetDeviceList, "axclrtGetDeviceList"),
    REQ(SetDevice, "axclrtSetDevice"),
    REQ(ResetDevice, "axclrtResetDevice"),
    REQ(CreateContext, "axclrtCreateContext"),
    REQ(SetCurrentContext, "axclrtSetCurrentContext"),
    REQ(DestroyContext, "axclrtDestroyContext"),
    REQ(Malloc, "axclrtMalloc"),
    REQ(Free, "axclrtFree"),
    REQ(MallocHost, "axclrtMallocHost"),
    REQ(FreeHost, "axclrtFreeHost"),
    REQ(Memset, "axclrtMemset"),
    REQ(Memcpy, "axclrtMemcpy"),
    REQ(EngineInit, "axclrtEngineInit"),
    REQ(EngineFinalize, "axclrtEngineFinalize"),
    REQ(EngineLoadFromFile, "axclrtEngineLoadFromFile"),
    REQ(EngineUnload, "axclrtEngineUnload"),
    REQ(EngineCreateContext, "axclrtEngineCreateContext"),
    REQ(EngineGetIOInfo, "axclrtEngineGetIOInfo"),
    REQ(EngineDestroyIOInfo, "axclrtEngineDestroyIOInfo"),
    REQ(EngineGetShapeGroupsCount, "axclrtEngineGetShapeGroupsCount"),
    REQ(EngineGetNumInputs, "axclrtEngineGetNumInputs"),
    REQ(EngineGetNumOutputs, "axclrtEngineGetNumOutputs"),
    REQ(EngineGetInputNameByIndex, "axclrtEngineGetInputNameByIndex"),
    REQ(EngineGetOutputNameByIndex, "axclrtEngineGetOutputNameByIndex"),
    REQ(EngineGetInputSizeByIndex, "axclrtEngineGetInputSizeByIndex"),
    REQ(EngineGetOutputSizeByIndex, "axclrtEngineGetOutputSizeByIndex"),
    REQ(EngineCreateIO, "axclrtEngineCreateIO"),
    REQ(EngineDestroyIO, "axclrtEngineDestroyIO"),
    REQ(EngineSetInputBufferByIndex, "axclrtEngineSetInputBufferByIndex"),
    REQ(EngineSetOutputBufferByIndex, "axclrtEngineSetOutputBufferByIndex"),
    REQ(EngineExecute, "axclrtEngineExecute"),
    OPT(GetSocName, "axclrtGetSocName"),
    OPT(SetLogLevel, "axclSetLogLevel"),
    OPT(GetDeviceProperties, "axclrtGetDeviceProperties"),
    OPT(EngineGetUsageFromModelId, "axclrtEngineGetUsageFromModelId"),
    OPT(EngineGetUsage, "axclrtEngineGetUsage"),
    OPT(EngineGetInputDataType, "axclrtEngineGetInputDataType"),
    OPT(EngineExecuteAsync, "axclrtEngineExecuteAsync"),
    OPT(CreateStream, "axclrtCreateStream"),
    OPT(DestroyStream, "axclrtDestroyStream"),
    OPT(SynchronizeStream, "axclrtSynchronizeStream"),
};

static enum ax_err resolve(struct axcl_rt *rt, char *err)
{
    for (size_t i = 0; i < sizeof syms / sizeof syms[0]; i++) {
        void *p = dlsym(rt->lib, syms[i].name);
        if (!p && syms[i].required)
            return ax_fail(err, AX_EUNSUPPORTED,
                           "%s does not export %s: not an AXCL runtime, or one too old "
                           "(install a current axclhost package)",
                           rt->path, syms[i].name);
        /* POSIX guarantees a data pointer from dlsym converts to a function
         * pointer; memcpy avoids the ISO C warning about the cast. */
        memcpy((char *)rt + syms[i].off, &p, sizeof p);
    }
    void *q = dlsym(rt->lib, "AXCL_SYS_MemQueryStatus");
    if (!q) {
        char sys[1100];
        const char *slash = strrchr(rt->path, '/');
        if (slash) {
            snprintf(sys, sizeof sys, "%.*s/libaxcl_sys.so", (int)(slash - rt->path), rt->path);
            rt->sys = dlopen(sys, RTLD_NOW | RTLD_LOCAL);
        }
        if (!rt->sys)
            rt->sys = dlopen("libaxcl_sys.so", RTLD_NOW | RTLD_LOCAL);
        if (rt->sys)
            q = dlsym(rt->sys, "AXCL_SYS_MemQueryStatus");
    }
    memcpy(&rt->SysMemQueryStatus, &q, sizeof q);
    rt->is_emulator = dlsym(rt->lib, "axclEmuInfo") != NULL;
    return AX_OK;
}

/* ---- finding the library --------------------------------------------- */

/* Preloads the dependencies with RTLD_GLOBAL. The facts' order comes
 * first; a library whose own dependency is not loaded yet fails and is
 * retried on the next pass (releases differ: libaxcl_comm of V3.10 needs
 * libaxcl_logger, which the facts list after it). */
static void preload_deps(struct axcl_rt *rt, const char *dir)
{
    int done[N_DEPS] = {0};
    for (int pass = 0; pass < (int)N_DEPS; pass++) {
        int progress = 0;
        for (size_t i = 0; i < N_DEPS && rt->n_deps < 8; i++) {
            if (done[i])
                continue;
            char p[1100];
            /* Known to the loader already (ld cache or loaded): fine. */
            void *h = dlopen(vendor_deps[i], RTLD_NOW | RTLD_GLOBAL);
            if (!h) {
                snprintf(p, sizeof p, "%s/%s", dir, vendor_deps[i]);
                h = dlopen(p, RTLD_NOW | RTLD_GLOBAL);
            }
            if (h) {
                rt->deps[rt->n_deps++] = h;
                done[i] = progress = 1;
            }
        }
        if (!progress)
            break;
    }
}

static int try_open(struct axcl_rt *rt, const char *path, char *why, size_t nwhy)
{
    rt->lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!rt->lib && strchr(path, '/')) {
        /* Unversioned SONAMEs, no RPATH: preload the dependencies from
         * the library's own directory and retry. */
        char dir[1024];
        snprintf(dir, sizeof dir, "%s", path);
        char *slash = strrchr(dir, '/');
        *slash = '\0';
        preload_deps(rt, dir[0] ? dir : "/");
        rt->lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    }
    if (!rt->lib) {
        const char *e = dlerror();
        snprintf(why, nwhy, "%s", e ? e : "dlopen failed");
        return 0;
    }
    snprintf(rt->path, sizeof rt->path, "%s", path);
    return 1;
}

enum ax_err axcl_rt_open(struct axcl_rt *rt, char *err)
{
    memset(rt, 0, sizeof *rt);
    char why[600] = "";
    const char *env = getenv("AXSERVE_AXCL_LIB");
    if (env && *env) {
        if (!try_open(rt, env, why, sizeof why))
            return ax_fail(err, AX_ENOTFOUND, "AXSERVE_AXCL_LIB=%s cannot be loaded: %s", env, why);
    } else if (!try_open(rt, "libaxcl_rt.so", why, sizeof why) &&
               !try_open(rt, VENDOR_DIR "/libaxcl_rt.so", why, sizeof why)) {
        return ax_fail(err, AX_ENOTFOUND,
                       "AXCL runtime not found (tried the ld cache and " VENDOR_DIR
                       "/libaxcl_rt.so: %s); install the axclhost package or set "
                       "AXSERVE_AXCL_LIB to libaxcl_rt.so",
                       why);
    }
    enum ax_err e = resolve(rt, err);
    if (e != AX_OK)
        axcl_rt_close(rt);
    return e;
}

void axcl_rt_close(struct axcl_rt *rt)
{
    if (rt->sys)
        dlclose(rt->sys);
    if (rt->lib)
        dlclose(rt->lib);
    for (int i = rt->n_deps - 1; i >= 0; i--)
        dlclose(rt->deps[i]);
    memset(rt, 0, sizeof *rt);
}

/* ---- process-wide instance ------------------------------------------- */

static pthread_mutex_t rt_lock = PTHREAD_MUTEX_INITIALIZER;
static struct axcl_rt the_rt;
static int rt_refs;

enum ax_err axcl_rt_acquire(const struct axcl_rt **out, char *err)
{
    *out = NULL;
    pthread_mutex_lock(&rt_lock);
    if (rt_refs == 0) {
        enum ax_err e = axcl_rt_open(&the_rt, err);
        if (e != AX_OK) {
            pthread_mutex_unlock(&rt_lock);
            return e;
        }
        axcl_error r = the_rt.Init(NULL);
        if (r != 0) {
            char path[1024];
            snprintf(path, sizeof path, "%s", the_rt.path);
            axcl_rt_close(&the_rt);
            pthread_mutex_unlock(&rt_lock);
            return ax_fail(err, AX_EDEVICE,
                           "axclInit failed with 0x%08x (%s) using %s: is an AX650N card "
                           "present and its host driver loaded? (check `axcl-smi`; "
                           "`axserve doctor` lists what is missing)",
                           (unsigned)r, axcl_rt_strerror(r), path);
        }
        the_rt.initialised = 1;
        ax_debug("axcl: runtime %s initialised", the_rt.path);
    }
    rt_refs++;
    *out = &the_rt;
    pthread_mutex_unlock(&rt_lock);
    return AX_OK;
}

void axcl_rt_release(void)
{
    pthread_mutex_lock(&rt_lock);
    if (rt_refs > 0 && --rt_refs == 0) {
        if (the_rt.initialised)
            the_rt.Finalize();
        axcl_rt_close(&the_rt);
    }
    pthread_mutex_unlock(&rt_lock);
}

const char *axcl_rt_strerror(axcl_error e)
{
    uint32_t u = (uint32_t)e;
    if (u == 0)
        return "success";
    if (u == (uint32_t)AXCL_ERR_DEVICE_NOT_CONNECTED)
        return "device not connected";
    if (u == (uint32_t)AXCL_ERR_NO_DEVICE_INIT)
        return "no device / driver not loaded";
    if (u == (uint32_t)AXCL_ERR_NO_CONTEXT)
        return "no context bound to this thread";
    if (u == (uint32_t)AXCL_ERR_EXECUTE)
        return "engine execute failed";
    switch ((u >> 8) & 0xff) {
    case 0x01:
        return "device error";
    case 0x02:
        return "context error";
    case 0x03:
        return "stream error";
    case 0x05:
        return "memory error";
    case 0x07:
        return "engine error";
    default:
        return "runtime error";
    }
}
