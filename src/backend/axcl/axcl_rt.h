/* axcl_rt.h - our own minimal declarations of the AXCL host runtime calls
 * axserve uses, and the loader that resolves them with dlopen/dlsym into
 * one struct.
 *
 * Written from the interoperability facts (types, values, prototypes); no
 * vendor header text. The build never needs the vendor SDK: the library is
 * found at run time (AXSERVE_AXCL_LIB, the ld cache, /usr/lib/axcl).
 * This file does not know about models or the backend; axcl_backend.c and
 * `axserve doctor` use it. The AXCL emulator (tools/axcl-emu) exports the
 * same ABI. */
#ifndef AX_BACKEND_AXCL_AXCL_RT_H
#define AX_BACKEND_AXCL_AXCL_RT_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

/* ---- types (C ABI; enums are 4-byte ints) ---------------------------- */
typedef int32_t axcl_error; /* 0 = success */

#define AXCL_MAX_DEVICES 256
struct axcl_devlist { /* 1028 bytes */
    uint32_t num;
    int32_t devices[AXCL_MAX_DEVICES]; /* PCIe bus numbers */
};

struct axcl_devprops { /* 240 bytes */
    char sw_version[64];
    uint64_t uid;
    uint32_t pci_domain, pci_bus_id, pci_device_id;
    int32_t temperature; /* unit undocumented; axcl-smi: millidegrees */
    uint32_t total_mem_kb, free_mem_kb, total_cmm_kb, free_cmm_kb;
    uint32_t cpu_loading, npu_loading; /* percent x100 */
    uint32_t reserved[32];
};

struct axcl_iodims { /* 132 bytes */
    int32_t dim_count;
    int32_t dims[32];
};

struct axcl_sys_memstatus { /* AXCL_SYS_MemQueryStatus; we read 3 fields */
    uint32_t total_size, remain_size, block_cnt;
    uint32_t reserved[1024]; /* partition table we do not read (under 1 KiB in V3.10) */
};

enum { AXCL_MALLOC_HUGE_FIRST = 0, AXCL_MALLOC_HUGE_ONLY = 1, AXCL_MALLOC_NORMAL_ONLY = 2 };
enum { AXCL_H2H = 0, AXCL_H2D = 1, AXCL_D2H = 2, AXCL_D2D = 3 };
enum { AXCL_VNPU_DISABLE = 0 };
enum { AXCL_DT_UINT32 = 8, AXCL_DT_BF16 = 14 };

/* Error code layout: 0x80000000 | module<<24 | 0x30<<16 | sub<<8 | id. */
#define AXCL_ERR_DEVICE_NOT_CONNECTED ((axcl_error)0x80300181u)
#define AXCL_ERR_NO_DEVICE_INIT ((axcl_error)0x8030010bu) /* axclInit without driver */
#define AXCL_ERR_NO_CONTEXT ((axcl_error)0x80300284u)
#define AXCL_ERR_EXECUTE ((axcl_error)0x8030070cu)

/* ---- the resolved calls ---------------------------------------------- */
struct axcl_rt {
    void *lib;     /* dlopen handle of libaxcl_rt (or a drop-in) */
    void *sys;     /* libaxcl_sys, optional */
    void *deps[8]; /* preloaded dependencies, in load order */
    int n_deps;
    char path[1024]; /* what was loaded */
    int is_emulator; /* the library says it is the axserve emulator */
    int initialised; /* axclInit succeeded */

    /* required */
    axcl_error (*Init)(const char *config);
    axcl_error (*Finalize)(void);
    axcl_error (*GetVersion)(int32_t *major, int32_t *minor, int32_t *patch);
    axcl_error (*GetDeviceList)(struct axcl_devlist *list);
    axcl_error (*SetDevice)(int32_t id);
    axcl_error (*ResetDevice)(int32_t id);
    axcl_error (*CreateContext)(void **ctx, int32_t id);
    axcl_error (*SetCurrentContext)(void *ctx);
    axcl_error (*DestroyContext)(void *ctx);
    axcl_error (*Malloc)(void **dev, size_t size, int32_t policy);
    axcl_error (*Free)(void *dev);
    axcl_error (*MallocHost)(void **host, size_t size);
    axcl_error (*FreeHost)(void *host);
    axcl_error (*Memset)(void *dev, uint8_t value, size_t n);
    axcl_error (*Memcpy)(void *dst, const void *src, size_t n, int32_t kind);
    axcl_error (*EngineInit)(int32_t vnpu_kind);
    axcl_error (*EngineFinalize)(void);
    axcl_error (*EngineLoadFromFile)(const char *path, uint64_t *model);
    axcl_error (*EngineUnload)(uint64_t model);
    axcl_error (*EngineCreateContext)(uint64_t model, uint64_t *ctx);
    axcl_error (*EngineGetIOInfo)(uint64_t model, void **info);
    axcl_error (*EngineDestroyIOInfo)(void *info);
    axcl_error (*EngineGetShapeGroupsCount)(void *info, int32_t *n);
    uint32_t (*EngineGetNumInputs)(void *info);
    uint32_t (*EngineGetNumOutputs)(void *info);
    const char *(*EngineGetInputNameByIndex)(void *info, uint32_t i);
    const char *(*EngineGetOutputNameByIndex)(void *info, uint32_t i);
    uint64_t (*EngineGetInputSizeByIndex)(void *info, uint32_t group, uint32_t i);
    uint64_t (*EngineGetOutputSizeByIndex)(void *info, uint32_t group, uint32_t i);
    axcl_error (*EngineCreateIO)(void *info, void **io);
    axcl_error (*EngineDestroyIO)(void *io);
    axcl_error (*EngineSetInputBufferByIndex)(void *io, uint32_t i, const void *dev, uint64_t size);
    axcl_error (*EngineSetOutputBufferByIndex)(void *io, uint32_t i, const void *dev,
                                               uint64_t size);
    axcl_error (*EngineExecute)(uint64_t model, uint64_t ctx, uint32_t group, void *io);

    /* optional: NULL when the runtime lacks them */
    const char *(*GetSocName)(void);
    axcl_error (*SetLogLevel)(int32_t level);
    axcl_error (*GetDeviceProperties)(int32_t id, struct axcl_devprops *props);
    axcl_error (*EngineGetUsageFromModelId)(uint64_t model, int64_t *sys, int64_t *cmm);
    axcl_error (*EngineGetUsage)(const char *path, int64_t *sys, int64_t *cmm); /* before load */
    axcl_error (*EngineGetInputDataType)(void *info, uint32_t i, int32_t *type);
    axcl_error (*EngineExecuteAsync)(uint64_t model, uint64_t ctx, uint32_t group, void *io,
                                     void *stream);
    axcl_error (*CreateStream)(void **stream);
    axcl_error (*DestroyStream)(void *stream);
    axcl_error (*SynchronizeStream)(void *stream);
    axcl_error (*SysMemQueryStatus)(struct axcl_sys_memstatus *st); /* libaxcl_sys */
};

/* Loads the runtime once per process and calls axclInit (reference
 * counted; every successful axcl_rt_acquire needs one axcl_rt_release,
 * whose last call runs axclFinalize and dlcloses). On AX_OK *out is a
 * borrowed pointer to the process-wide struct. AX_ENOTFOUND when no
 * library is found, AX_EDEVICE when axclInit fails (no driver). */
enum ax_err axcl_rt_acquire(const struct axcl_rt **out, char *err);
void axcl_rt_release(void);

/* Loads and resolves only (no axclInit): for doctor, which reports the
 * library it found before trying to initialise it. Close with
 * axcl_rt_close. Not to be mixed with acquire on the same struct. */
enum ax_err axcl_rt_open(struct axcl_rt *rt, char *err);
void axcl_rt_close(struct axcl_rt *rt);

/* A short text for an AXCL error code ("device not connected", ...). */
const char *axcl_rt_strerror(axcl_error e);

#endif
