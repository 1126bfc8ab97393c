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
#include <sys/wait.h>
#include <unistd.h>

#include "backend/axcl/axcl_rt.h"

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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
