/* doctor.c - `axserve doctor [-m DIR] [--devices 1,2]`: checks, in order,
 * everything serving on an AX650N card needs, one line per check, with
 * the fix when one fails:
 *   runtime (path, version) -> driver / device node -> axclInit -> devices
 *   (bus id, temperature, CMM, firmware) -> model directory -> fits in CMM
 *   -> tokenizer -> the backend opens -> the bus-call optimisations chosen
 *   (each with its switch).
 * Exit status 0 only when the model can be served (without -m: when the
 * runtime works and a card is present). Needs no `source /etc/profile`:
 * the runtime is found by axcl_rt.c on its own. */
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "backend/axcl/axcl.h"
#include "backend/axcl/axcl_rt.h"
#include "backend/backend.h"
#include "cli/cli.h"
#include "model/model.h"
#include "tok/tok.h"

#define MIB (1024.0 * 1024.0)

struct doc {
    int fails;
    const char *dir, *devices;
};

static void ok(const char *what, const char *fmt, const char *detail)
{
    printf("ok    %-12s ", what);
    printf(fmt, detail);
    printf("\n");
}

static void fail(struct doc *d, const char *what, const char *detail, const char *fix)
{
    d->fails++;
    printf("FAIL  %-12s %s\n", what, detail);
    if (fix)
        printf("      %-12s fix: %s\n", "", fix);
}

/* ---- runtime and cards ---------------------------------------------- */

static int check_runtime(struct doc *d)
{
    struct axcl_rt rt;
    char err[AX_ERRLEN];
    if (axcl_rt_open(&rt, err) != AX_OK) {
        fail(d, "runtime", err,
             "install the axclhost package (libraries in /usr/lib/axcl), or point "
             "AXSERVE_AXCL_LIB at libaxcl_rt.so");
        return 0;
    }
    int32_t a = 0, b = 0, c = 0;
    char line[1400];
    if (rt.GetVersion(&a, &b, &c) == 0)
        snprintf(line, sizeof line, "%s (version %d.%d.%d%s)", rt.path, a, b, c,
                 rt.is_emulator ? ", axserve EMULATOR - not a real card" : "");
    else
        snprintf(line, sizeof line, "%s (version unknown%s)", rt.path,
                 rt.is_emulator ? ", axserve EMULATOR" : "");
    ok("runtime", "%s", line);
    int emu = rt.is_emulator;
    axcl_rt_close(&rt);
    /* The V3.10 runtime opens /dev/axcl_host at axclInit (its log names the
     * node when it is missing); other releases may differ, so a missing
     * node is a warning and axclInit below decides. */
    if (emu) {
        ok("driver", "%s", "emulated card: no device node needed");
        return 1;
    }
    struct stat st;
    if (stat("/dev/axcl_host", &st) == 0) {
        ok("driver", "%s", "/dev/axcl_host present");
    } else {
        glob_t g;
        if (glob("/dev/axcl*", 0, NULL, &g) == 0 && g.gl_pathc > 0) {
            snprintf(line, sizeof line, "%s (no /dev/axcl_host; axclInit decides)", g.gl_pathv[0]);
            ok("driver", "%s", line);
        } else {
            printf("warn  %-12s no /dev/axcl_host: the AXCL host driver is not loaded (fix: "
                   "install the axclhost package and reboot, or `sudo modprobe axcl_host`)\n",
                   "driver");
        }
        globfree(&g);
    }
    return 1;
}

static double temp_c(int32_t t)
{
    /* Unit undocumented; axcl-smi prints millidegrees. */
    return t > 1000 || t < -1000 ? t / 1000.0 : (double)t;
}

static int check_devices(struct doc *d, const struct axcl_rt *rt)
{
    struct axcl_devlist list;
    memset(&list, 0, sizeof list);
    axcl_error r = rt->GetDeviceList(&list);
    if (r != 0 || list.num == 0) {
        char m[128];
        snprintf(m, sizeof m, "no AX650N card listed (axclrtGetDeviceList 0x%08x, %u cards)",
                 (unsigned)r, list.num);
        fail(d, "devices", m, "check the card is seated, `lspci`, and `axcl-smi`");
        return 0;
    }
    for (uint32_t i = 0; i < list.num && i < AXCL_MAX_DEVICES; i++) {
        char what[32], line[400];
        snprintf(what, sizeof what, "device %d", list.devices[i]);
        struct axcl_devprops p;
        memset(&p, 0, sizeof p);
        if (!rt->GetDeviceProperties) {
            ok(what, "%s", "present (this runtime has no GetDeviceProperties)");
            continue;
        }
        r = rt->GetDeviceProperties(list.devices[i], &p);
        if (r != 0) {
            snprintf(line, sizeof line, "properties failed: 0x%08x (%s)", (unsigned)r,
                     axcl_rt_strerror(r));
            fail(d, what, line, "check `axcl-smi`; reboot the card's host if it is stuck");
            continue;
        }
        p.sw_version[sizeof p.sw_version - 1] = '\0';
        snprintf(line, sizeof line,
                 "bus %u, firmware %s, %.1f C, CMM %.0f MiB total / %.0f MiB free, NPU %.0f%%",
                 p.pci_bus_id, p.sw_version, temp_c(p.temperature), (double)p.total_cmm_kb / 1024.0,
                 (double)p.free_cmm_kb / 1024.0, p.npu_loading / 100.0);
        ok(what, "%s", line);
    }
    return 1;
}

/* ---- model ---------------------------------------------------------- */

static uint64_t fsize(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 ? (uint64_t)st.st_size : 0;
}

static int check_model(struct doc *d, struct model **out)
{
    char err[AX_ERRLEN], line[AX_ERRLEN + 200];
    if (model_open(d->dir, out, err) != AX_OK) {
        fail(d, "model", err,
             strstr(err, "LFS") ? "download the real files: `axserve pull`"
                                : "check the directory (`axserve pull`)");
        return 0;
    }
    const struct axmodel_layout *lay = model_axmodel(*out);
    if (!lay) {
        fail(d, "model", "not an AXERA axmodel directory (an HF checkpoint or tokenizer only)",
             "the card runs AX650 builds (`axserve pull AXERA-TECH/...`); serve this one with "
             "--backend cpu");
        return 0;
    }
    uint64_t total = fsize(lay->post_path) + fsize(lay->embed_path);
    char path[MODEL_PATH_MAX + 32];
    for (int l = 0; l < lay->n_layers; l++) {
        snprintf(path, sizeof path, lay->layer_template, l);
        total += fsize(path);
    }
    snprintf(line, sizeof line, "%s: %d layer models + post, embedding %lld x %lld bf16, %.1f MiB",
             d->dir, lay->n_layers, (long long)lay->embed_rows, (long long)lay->embed_cols,
             (double)total / MIB);
    ok("model", "%s", line);
    return 1;
}

/* Weights per card (ceil(L/cards) layers on the first, post on the last)
 * against free CMM. */
static int check_fits(struct doc *d, const struct axcl_rt *rt, const struct axmodel_layout *lay)
{
    struct axcl_devlist list;
    memset(&list, 0, sizeof list);
    if (rt->GetDeviceList(&list) != 0 || !list.num)
        return 0;
    int ids[16] = {0}, n = 0;
    if (d->devices) {
        for (const char *s = d->devices; *s && n < 16;) {
            char *end;
            ids[n++] = (int)strtol(s, &end, 10);
            s = *end == ',' ? end + 1 : (*end ? end + 1 : end);
        }
    } else {
        for (uint32_t i = 0; i < list.num && n < 16; i++)
            ids[n++] = list.devices[i];
    }
    if (n < 1 || lay->n_layers < 1)
        return 0;
    int per = (lay->n_layers + n - 1) / n, good = 1;
    n = (lay->n_layers + per - 1) / per;
    char path[MODEL_PATH_MAX + 32];
    for (int c = 0; c < n; c++) {
        uint64_t need = c == n - 1 ? fsize(lay->post_path) : 0;
        for (int l = c * per; l < (c + 1) * per && l < lay->n_layers; l++) {
            snprintf(path, sizeof path, lay->layer_template, l);
            need += fsize(path);
        }
        struct axcl_devprops p;
        char line[300];
        if (!rt->GetDeviceProperties || rt->GetDeviceProperties(ids[c], &p) != 0) {
            snprintf(line, sizeof line,
                     "card %d: needs %.1f MiB of CMM for weights (free CMM "
                     "unknown: the backend will find out)",
                     ids[c], (double)need / MIB);
            ok("fits", "%s", line);
            continue;
        }
        double free_mib = p.free_cmm_kb / 1024.0;
        snprintf(line, sizeof line, "card %d: weights need %.1f MiB of CMM, %.1f MiB free", ids[c],
                 (double)need / MIB, free_mib);
        if ((double)need / MIB <= free_mib) {
            ok("fits", "%s", line);
        } else {
            fail(d, "fits", line,
                 "use more cards (--devices 1,2), a smaller model, or stop "
                 "the process holding the card (`axcl-smi`)");
            good = 0;
        }
    }
    return good;
}

static int check_tokenizer(struct doc *d, const struct model *m)
{
    const char *tj = model_tokenizer_json(m);
    if (!tj) {
        fail(d, "tokenizer",
             "no tokenizer.json + tokenizer_config.json in the directory or a "
             "tokenizer subfolder",
             "`axserve pull` the model again");
        return 0;
    }
    struct tok *t = NULL;
    char err[AX_ERRLEN], line[AX_ERRLEN + 64];
    if (tok_load(tj, &t, err) != AX_OK) {
        fail(d, "tokenizer", err, "`axserve pull` the model again");
        return 0;
    }
    snprintf(line, sizeof line, "%.400s loads (%d ids)", tj, tok_vocab_size(t));
    tok_free(t);
    ok("tokenizer", "%s", line);
    return 1;
}

static int check_backend(struct doc *d, const struct model *m)
{
    struct backend_opts o = {.name = "axcl", .devices = d->devices};
    struct backend *b = NULL;
    char err[AX_ERRLEN], line[800];
    if (backend_open(&o, m, &b, err) != AX_OK) {
        fail(d, "backend", err, NULL);
        return 0;
    }
    struct axcl_info in;
    axcl_backend_info(b, &in);
    char hist[200] = "";
    for (int g = 1; g < in.n_groups; g++)
        snprintf(hist + strlen(hist), sizeof hist - strlen(hist), "%s%d", g > 1 ? "," : "",
                 in.history[g]);
    snprintf(line, sizeof line,
             "%d card(s), context %d tokens, %d KV slot(s) (%.1f MiB each), prefill chunk %d "
             "(histories %s), kv width %d, vocab %d",
             in.n_cards, in.n_ctx, in.n_slots, in.cmm_mib_per_slot, in.prefill,
             hist[0] ? hist : "none", in.kv_width, in.vocab);
    ok("serves", "%s", line);
    int layers = 0;
    for (int i = 0; i < in.n_cards; i++)
        layers += in.layers_on[i];
    snprintf(line, sizeof line, "%s; switch AXSERVE_AXCL_KV_DIRECT=0|1", in.kv_direct_why);
    ok("kv-direct", "%s", line);
    snprintf(line, sizeof line, "%s; switch AXSERVE_AXCL_ASYNC=0|1", in.async_why);
    ok("async", "%s", line);
    snprintf(line, sizeof line, "%s; switch AXSERVE_AXCL_PACKED=0", in.packed_why);
    ok("packed", "%s", line);
    snprintf(line, sizeof line, "%s; switch AXSERVE_AXCL_PINNED=0",
             in.pinned ? "on (axclrtMallocHost)" : "off (AXSERVE_AXCL_PINNED=0)");
    ok("pinned", "%s", line);
    /* Per decoded token: one upload per card, one execute per layer, the
     * post model, (async) one sync per card, one download per card. */
    int calls = layers + 1 + 2 * in.n_cards + (in.async ? in.n_cards : 0) +
                (in.kv_direct ? 0 : 2 * layers) + (in.packed ? 0 : 2 * in.n_cards);
    snprintf(line, sizeof line,
             "%d bus calls per decoded token = %.2f per layer (vendor runtime: 5-6 per layer); "
             "assumes buffer binding is host-side bookkeeping - if tokens differ from "
             "--backend cpu, retry with AXSERVE_AXCL_KV_DIRECT=0, AXSERVE_AXCL_ASYNC=0 and "
             "AXSERVE_AXCL_PACKED=0",
             calls, (double)calls / layers);
    ok("bus-calls", "%s", line);
    backend_free(b);
    return 1;
}

/* ---- command --------------------------------------------------------- */

int cli_doctor(int argc, char **argv)
{
    struct doc d = {0};
    for (int i = 1; i < argc; i++) {
        if ((!strcmp(argv[i], "-m") || !strcmp(argv[i], "--model")) && i + 1 < argc) {
            d.dir = argv[++i];
        } else if (!strcmp(argv[i], "--devices") && i + 1 < argc) {
            d.devices = argv[++i];
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: axserve doctor [-m MODEL_DIR] [--devices 1,2]\n"
                   "Checks the AXCL runtime, driver, cards, and (with -m) that the model can "
                   "be served. Exit 0 only if it can.\n");
            return 0;
        } else {
            fprintf(stderr, "usage: axserve doctor [-m MODEL_DIR] [--devices 1,2]\n");
            return 2;
        }
    }
    if (!d.devices && getenv("AXSERVE_AXCL_DEVICES"))
        d.devices = getenv("AXSERVE_AXCL_DEVICES");
    if (!check_runtime(&d)) {
        printf("doctor: NOT ready\n");
        return 1;
    }
    const struct axcl_rt *rt = NULL;
    char err[AX_ERRLEN];
    if (axcl_rt_acquire(&rt, err) != AX_OK) {
        fail(&d, "axclInit", err,
             "load the AXCL host driver (reinstall the axclhost package, reboot), check "
             "`axcl-smi`; no card on this machine means only --backend cpu can serve");
        printf("doctor: NOT ready\n");
        return 1;
    }
    ok("axclInit", "%s", "ok");
    int served = check_devices(&d, rt);
    if (served && d.dir) {
        struct model *m = NULL;
        served = check_model(&d, &m);
        if (served)
            served = check_fits(&d, rt, model_axmodel(m));
        if (served)
            served = check_tokenizer(&d, m);
        if (served)
            served = check_backend(&d, m);
        model_free(m);
    }
    axcl_rt_release();
    printf("%s\n", d.fails || !served ? "doctor: NOT ready"
                   : d.dir            ? "doctor: ready to serve"
                                      : "doctor: runtime and cards ok "
                                        "(add -m DIR to check a model)");
    return d.fails || !served ? 1 : 0;
}
