/* test_axcl.c - the AXCL emulator's contract (through axserve's own runtime
 * loader) and the loader itself: device memory the host cannot dereference,
 * interior pointers, memcpy kinds, the runtime's error codes, per-thread
 * contexts, CMM exhaustion, the no-driver path, missing symbols.
 * The emulator is found next to this binary's build directory
 * (BUILD/tests/test_axcl -> BUILD/libaxcl_emu.so) unless AXSERVE_AXCL_LIB
 * is set. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../tools/axcl-emu/axemu_format.h"
#include "backend/axcl/axcl.h"
#include "backend/axcl/axcl_rt.h"
#include "model/model.h"
#include "util/mem.h"

static char emu_path[4096];

static const struct axcl_rt *up(void)
{
    setenv("AXSERVE_AXCL_LIB", emu_path, 1);
    const struct axcl_rt *rt = NULL;
    char err[AX_ERRLEN] = "";
    enum ax_err e = axcl_rt_acquire(&rt, err);
    if (e != AX_OK)
        fprintf(stderr, "%s\n", err);
    assert_int_equal(e, AX_OK);
    assert_true(rt->is_emulator);
    struct axcl_devlist l;
    assert_int_equal(rt->GetDeviceList(&l), 0);
    assert_true(l.num >= 1);
    assert_int_equal(rt->SetDevice(l.devices[0]), 0);
    return rt;
}

static void down(const struct axcl_rt *rt, int id)
{
    rt->ResetDevice(id);
    axcl_rt_release();
}

static void host_cannot_dereference_device_memory(void **state)
{
    (void)state;
    const struct axcl_rt *rt = up();
    void *p = NULL;
    assert_int_equal(rt->Malloc(&p, 4096, 0), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        signal(SIGSEGV, SIG_DFL); /* not the sanitizer's handler */
        volatile uint8_t *q = p;
        q[10] = 1;
        _exit(0);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGSEGV);
    assert_int_equal(rt->Free(p), 0);
    down(rt, 1);
}

static void memcpy_kinds_and_interior_pointers(void **state)
{
    (void)state;
    const struct axcl_rt *rt = up();
    uint8_t *a = NULL, *b = NULL, host[256], back[256];
    for (int i = 0; i < 256; i++)
        host[i] = (uint8_t)i;
    assert_int_equal(rt->Malloc((void **)&a, 1024, 0), 0);
    assert_int_equal(rt->Malloc((void **)&b, 1024, 0), 0);
    assert_int_equal(rt->Memcpy(a + 100, host, 256, AXCL_H2D), 0); /* interior */
    assert_int_equal(rt->Memcpy(b + 7, a + 100, 256, AXCL_D2D), 0);
    assert_int_equal(rt->Memcpy(back, b + 7, 256, AXCL_D2H), 0);
    assert_memory_equal(host, back, 256);
    assert_int_equal(rt->Memset(b, 0x5a, 16), 0);
    assert_int_equal(rt->Memcpy(back, b, 16, AXCL_D2H), 0);
    assert_int_equal(back[15], 0x5a);
    /* Past the end of the allocation, host memory as device memory, a bad
     * kind, freeing an interior pointer: all refused with memory codes. */
    assert_int_equal((uint32_t)rt->Memcpy(a + 1000, host, 256, AXCL_H2D), 0x80300501u);
    assert_int_equal((uint32_t)rt->Memcpy(back, host, 16, AXCL_D2H), 0x80300501u);
    assert_int_equal((uint32_t)rt->Memcpy(a, host, 16, 9), 0x80300502u);
    assert_int_equal((uint32_t)rt->Free(a + 8), 0x80300501u);
    assert_int_equal(rt->Free(a), 0);
    assert_int_equal(rt->Free(b), 0);
    down(rt, 1);
}

static void *no_context_thread(void *arg)
{
    const struct axcl_rt *rt = arg;
    void *p = NULL;
    return (void *)(intptr_t)rt->Malloc(&p, 64, 0);
}

static void calls_need_a_context_per_thread(void **state)
{
    (void)state;
    const struct axcl_rt *rt = up();
    pthread_t th;
    void *res;
    pthread_create(&th, NULL, no_context_thread, (void *)rt);
    pthread_join(th, &res);
    assert_int_equal((uint32_t)(intptr_t)res, 0x80300284u);
    down(rt, 1);
}

static void cmm_exhaustion(void **state)
{
    (void)state;
    setenv("AXCL_EMU_CMM_KB", "64", 1);
    const struct axcl_rt *rt = up();
    void *p = NULL, *q = NULL;
    assert_int_equal((uint32_t)rt->Malloc(&p, 128 << 10, 0), 0x80300504u);
    assert_int_equal(rt->Malloc(&p, 32 << 10, 0), 0);
    assert_int_equal(rt->Malloc(&q, 16 << 10, 0), 0);
    struct axcl_devprops pr;
    assert_int_equal(rt->GetDeviceProperties(1, &pr), 0);
    assert_int_equal(pr.total_cmm_kb, 64);
    assert_int_equal(pr.free_cmm_kb, 16);
    rt->Free(p);
    rt->Free(q);
    down(rt, 1);
    unsetenv("AXCL_EMU_CMM_KB");
}

static void no_driver(void **state)
{
    (void)state;
    setenv("AXSERVE_AXCL_LIB", emu_path, 1);
    setenv("AXCL_EMU_NO_DEVICE", "1", 1);
    const struct axcl_rt *rt = NULL;
    char err[AX_ERRLEN] = "";
    assert_int_equal(axcl_rt_acquire(&rt, err), AX_EDEVICE);
    assert_non_null(strstr(err, "0x8030010b"));
    assert_null(rt);
    unsetenv("AXCL_EMU_NO_DEVICE");
}

static void device_list_and_bus_ids(void **state)
{
    (void)state;
    setenv("AXCL_EMU_DEVICES", "3,5", 1);
    const struct axcl_rt *rt = up();
    struct axcl_devlist l;
    assert_int_equal(rt->GetDeviceList(&l), 0);
    assert_int_equal(l.num, 2);
    assert_int_equal(l.devices[0], 3);
    assert_int_equal(l.devices[1], 5);
    assert_int_not_equal(rt->SetDevice(0), 0); /* never assume device 0 */
    down(rt, 3);
    unsetenv("AXCL_EMU_DEVICES");
}

static void missing_symbol_is_named(void **state)
{
    (void)state;
    setenv("AXSERVE_AXCL_LIB", "libm.so.6", 1);
    struct axcl_rt rt;
    char err[AX_ERRLEN] = "";
    assert_int_equal(axcl_rt_open(&rt, err), AX_EUNSUPPORTED);
    assert_non_null(strstr(err, "axclInit"));
    assert_non_null(strstr(err, "libm.so.6"));
    setenv("AXSERVE_AXCL_LIB", "/nonexistent/libaxcl_rt.so", 1);
    assert_int_equal(axcl_rt_open(&rt, err), AX_ENOTFOUND);
}

/* ---- the backend on a tiny emulator model written here -------------- */

static char tmp_model_dir[256];

static uint32_t lcg = 12345;
static uint16_t rnd_bf16(float scale)
{
    lcg = lcg * 1664525u + 1013904223u;
    float f = ((float)(lcg >> 8) / (float)(1u << 24) - 0.5f) * 2 * scale;
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)(u >> 16);
}

static void write_file(const char *path, const struct axemu_header *h, size_t n_w)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (h)
        assert_int_equal(fwrite(h, sizeof *h, 1, f), 1);
    for (size_t i = 0; i < n_w; i++) {
        uint16_t w = rnd_bf16(0.5f);
        fwrite(&w, 2, 1, f);
    }
    fclose(f);
}

/* 3 layers, hidden 32, 2 heads of 16 (1 kv head), vocab 50, N 31, P 8,
 * prefill histories 1 and 16. */
static void make_model(void)
{
    snprintf(tmp_model_dir, sizeof tmp_model_dir, "/tmp/axcl-unit-XXXXXX");
    assert_non_null(mkdtemp(tmp_model_dir));
    char p[512];
    struct axemu_header h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, AXEMU_MAGIC, 8);
    h.kind = AXEMU_KIND_LAYER;
    h.hidden = 32;
    h.intermediate = 64;
    h.n_heads = 2;
    h.n_kv_heads = 1;
    h.head_dim = 16;
    h.kv_cache_num = 31;
    h.prefill = 8;
    h.n_groups = 3;
    h.history[1] = 1;
    h.history[2] = 16;
    h.rope_theta = 1e6;
    h.rms_eps = 1e-6;
    h.weights_offset = AXEMU_HEADER_SIZE;
    h.weights_size = axemu_weight_count(&h) * 2;
    for (int l = 0; l < 3; l++) {
        snprintf(p, sizeof p, "%s/t_p8_l%d_together.axmodel", tmp_model_dir, l);
        write_file(p, &h, (size_t)axemu_weight_count(&h));
    }
    struct axemu_header post = h;
    post.kind = AXEMU_KIND_POST;
    post.vocab = 50;
    post.n_groups = 1;
    post.intermediate = 0;
    post.weights_size = axemu_weight_count(&post) * 2;
    snprintf(p, sizeof p, "%s/t_post.axmodel", tmp_model_dir);
    write_file(p, &post, (size_t)axemu_weight_count(&post));
    snprintf(p, sizeof p, "%s/embed.bin", tmp_model_dir);
    write_file(p, NULL, 50 * 32);
    snprintf(p, sizeof p, "%s/config.json", tmp_model_dir);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fprintf(f, "{\"template_filename_axmodel\": \"t_p8_l%%d_together.axmodel\", "
               "\"axmodel_num\": 3, \"filename_post_axmodel\": \"t_post.axmodel\", "
               "\"filename_tokens_embed\": \"embed.bin\", \"tokens_embed_num\": 50, "
               "\"tokens_embed_size\": 32}\n");
    fclose(f);
}

static void remove_model(void)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_model_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmp_model_dir);
}

static enum ax_err open_backend(int n_slots, struct model **m, struct backend **b)
{
    char err[AX_ERRLEN] = "";
    struct backend_opts o = {.name = "axcl", .n_slots = n_slots};
    *b = NULL;
    enum ax_err e = model_open(tmp_model_dir, m, err);
    if (e == AX_OK)
        e = backend_open(&o, *m, b, err);
    return e;
}

static enum ax_err run(struct backend *b, int slot, const int32_t *t, int n, int pos, float *lg)
{
    char err[AX_ERRLEN];
    struct backend_seq s = {slot, t, n, pos, lg};
    return b->ops->forward(b->ctx, &s, 1, err);
}

/* Two conversations interleaved in slots 0 and 1 give exactly the logits
 * each gives alone; continuing at a smaller position (rollback) gives the
 * logits of a fresh run of that prefix. */
static void slots_and_rollback(void **state)
{
    (void)state;
    setenv("AXSERVE_AXCL_LIB", emu_path, 1);
    struct model *m = NULL;
    struct backend *b = NULL;
    assert_int_equal(open_backend(2, &m, &b), AX_OK);
    assert_int_equal(b->lim.n_slots, 2);
    assert_int_equal(b->lim.n_ctx, 31);
    assert_int_equal(b->lim.prefill_chunk, 8);
    assert_int_equal(b->lim.n_vocab, 50);
    int32_t A[20], B[20];
    for (int i = 0; i < 20; i++) {
        A[i] = (i * 7 + 1) % 50;
        B[i] = (i * 11 + 3) % 50;
    }
    float alone[50], mixed[50], fresh[50], tmp[50];
    assert_int_equal(run(b, 0, A, 12, 0, tmp), AX_OK);
    assert_int_equal(run(b, 0, A + 12, 1, 12, alone), AX_OK);
    /* B in slot 1 between A's steps; A's second pass must not change. */
    assert_int_equal(run(b, 0, A, 12, 0, tmp), AX_OK);
    assert_int_equal(run(b, 1, B, 15, 0, tmp), AX_OK);
    assert_int_equal(run(b, 1, B + 15, 1, 15, tmp), AX_OK);
    assert_int_equal(run(b, 0, A + 12, 1, 12, mixed), AX_OK);
    assert_memory_equal(alone, mixed, sizeof alone);
    /* Rollback: slot 0 holds A[0..13); continue at 5 with B's tokens. */
    assert_int_equal(run(b, 0, B, 3, 5, mixed), AX_OK);
    int32_t pre[8];
    memcpy(pre, A, 5 * sizeof *A);
    memcpy(pre + 5, B, 3 * sizeof *B);
    assert_int_equal(run(b, 1, pre, 8, 0, fresh), AX_OK);
    assert_memory_equal(fresh, mixed, sizeof fresh);
    /* Out of range: position past the context, bad slot, bad token. */
    assert_int_equal(run(b, 0, A, 2, 30, tmp), AX_ECONTEXT);
    assert_int_equal(run(b, 2, A, 1, 0, tmp), AX_EINVAL);
    int32_t bad = 50;
    assert_int_equal(run(b, 0, &bad, 1, 0, tmp), AX_ERANGE);
    assert_int_equal(b->ops->healthy(b->ctx), 1);
    backend_free(b);
    model_free(m);
}

/* Failing the Nth allocation anywhere in model_open + backend_open + a
 * forward gives AX_OK or a clean AX_ENOMEM, never a crash or a leak
 * (the ASan build checks leaks at exit). */
static void allocation_failures(void **state)
{
    (void)state;
    setenv("AXSERVE_AXCL_LIB", emu_path, 1);
    int32_t t[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    float lg[50];
    for (long n = 0; n < 400; n++) {
        struct model *m = NULL;
        struct backend *b = NULL;
        long before = ax_mem_count();
        ax_mem_fail_after(n);
        enum ax_err e = open_backend(1, &m, &b);
        if (e == AX_OK)
            e = run(b, 0, t, 10, 0, lg);
        ax_mem_fail_after(-1);
        long used = ax_mem_count() - before;
        assert_true(e == AX_OK || e == AX_ENOMEM);
        backend_free(b);
        model_free(m);
        if (e == AX_OK && used <= n) {
            print_message("allocation failures: %ld allocations, each failed once\n", n);
            assert_true(n > 5);
            break; /* every allocation of the path has been failed once */
        }
        assert_true(n < 399); /* the path must finish within the budget */
    }
}

static int setup_model(void **state)
{
    (void)state;
    make_model();
    return 0;
}

static int teardown_model(void **state)
{
    (void)state;
    remove_model();
    return 0;
}

int main(int argc, char **argv)
{
    (void)argc;
    const char *env = getenv("AXSERVE_AXCL_LIB");
    if (env && *env) {
        snprintf(emu_path, sizeof emu_path, "%s", env);
    } else {
        /* BUILD/tests/test_axcl -> BUILD/libaxcl_emu.so */
        snprintf(emu_path, sizeof emu_path, "%s", argv[0]);
        char *s = strrchr(emu_path, '/');
        if (s)
            *s = '\0';
        s = strrchr(emu_path, '/');
        if (s)
            *s = '\0';
        else
            snprintf(emu_path, sizeof emu_path, "..");
        strncat(emu_path, "/libaxcl_emu.so", sizeof emu_path - strlen(emu_path) - 1);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(host_cannot_dereference_device_memory),
        cmocka_unit_test(memcpy_kinds_and_interior_pointers),
        cmocka_unit_test(calls_need_a_context_per_thread),
        cmocka_unit_test(cmm_exhaustion),
        cmocka_unit_test(no_driver),
        cmocka_unit_test(device_list_and_bus_ids),
        cmocka_unit_test(missing_symbol_is_named),
        cmocka_unit_test_setup_teardown(slots_and_rollback, setup_model, teardown_model),
        cmocka_unit_test_setup_teardown(allocation_failures, setup_model, teardown_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
