/* axemu.h - what the AXCL emulator exports beyond the AXCL ABI: counters
 * and the modelled link time, for bench/axcl and the emulator's tests.
 * Hosts find these with dlsym in the same library handle; the presence of
 * axclEmuInfo is how axserve tells the emulator from a real runtime. */
#ifndef AXEMU_H
#define AXEMU_H

#include <stdint.h>

/* Every AXCL call the emulator exports, in counter order. bus = 1 when the
 * call is modelled as a round trip over PCIe to the card; 0 when it is
 * modelled as host-side bookkeeping of the runtime (IO info queries,
 * buffer bindings, host memory, contexts). This split is the emulator's
 * assumption; the real runtime may differ and `axserve doctor` says so. */
#define AXEMU_CALLS(X)                                                                             \
    X(axclInit, 1)                                                                                 \
    X(axclFinalize, 1) X(axclSetLogLevel, 0) X(axclrtGetVersion, 0) X(axclrtGetSocName, 0) X(      \
        axclrtGetDeviceList, 1) X(axclrtGetDeviceCount, 1) X(axclrtSetDevice,                      \
                                                             1) X(axclrtResetDevice, 1)            \
        X(axclrtGetDeviceProperties, 1) X(axclrtCreateContext, 1) X(axclrtSetCurrentContext, 0) X( \
            axclrtDestroyContext, 1) X(axclrtMalloc, 1) X(axclrtMallocCached, 1) X(axclrtFree, 1)  \
            X(axclrtMallocHost, 0) X(axclrtFreeHost, 0) X(axclrtMemset, 1) X(axclrtMemcpy, 1) X(   \
                axclrtCreateStream, 1) X(axclrtDestroyStream, 1) X(axclrtSynchronizeStream, 1)     \
                X(axclrtEngineInit, 1) X(axclrtEngineFinalize, 1) X(axclrtEngineLoadFromFile, 1)   \
                    X(axclrtEngineUnload, 1) X(axclrtEngineGetUsageFromModelId, 1)                 \
                        X(axclrtEngineGetUsage, 0) X(axclrtEngineCreateContext, 1)                 \
                            X(axclrtEngineGetIOInfo,                                               \
                              1) X(axclrtEngineDestroyIOInfo,                                      \
                                   0) X(axclrtEngineGetShapeGroupsCount, 0)                        \
                                X(axclrtEngineGetNumInputs, 0) X(axclrtEngineGetNumOutputs, 0)     \
                                    X(axclrtEngineGetInputNameByIndex,                             \
                                      0) X(axclrtEngineGetOutputNameByIndex,                       \
                                           0) X(axclrtEngineGetInputSizeByIndex, 0)                \
                                        X(axclrtEngineGetOutputSizeByIndex,                        \
                                          0) X(axclrtEngineGetInputDataType, 0)                    \
                                            X(axclrtEngineCreateIO, 0) X(axclrtEngineDestroyIO, 0) \
                                                X(axclrtEngineSetInputBufferByIndex, 0)            \
                                                    X(axclrtEngineSetOutputBufferByIndex, 0)       \
                                                        X(axclrtEngineExecute, 1)                  \
                                                            X(axclrtEngineExecuteAsync, 1)         \
                                                                X(AXCL_SYS_MemQueryStatus, 1)

#define AXEMU_ENUM(name, bus) AXEMU_C_##name,
enum axemu_call { AXEMU_CALLS(AXEMU_ENUM) AXEMU_N_CALLS };
#undef AXEMU_ENUM

struct axemu_stats {
    uint64_t calls[AXEMU_N_CALLS];
    uint64_t bus_calls;     /* sum of calls with bus = 1 */
    uint64_t h2d, d2h, d2d; /* bytes */
    double modelled_us;     /* host timeline of the link model */
};

/* Link model used for modelled_us (set before axclInit or any time):
 * per bus call latency, device compute per executed layer / post model,
 * bandwidth in MB/s (0 = not modelled). Defaults from AXCL_EMU_LINK
 * ("lat_us=150,layer_us=1800,post_us=1500,mbps=0"). */
struct axemu_link {
    double lat_us, layer_us, post_us, mbps;
};

/* Exported entry points (dlsym names). */
typedef const char *(*axemu_info_fn)(void);                    /* "axcl-emu <version>" */
typedef void (*axemu_get_stats_fn)(struct axemu_stats *out);   /* axclEmuGetStats */
typedef void (*axemu_set_link_fn)(const struct axemu_link *l); /* axclEmuSetLink */

#endif
