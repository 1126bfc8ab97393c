/* model_stub_tmp.c - TEMPORARY weak stand-ins for the model module's
 * functions the axcl backend calls, so the tree links before src/model
 * lands. Strong definitions in src/model override these. Remove at merge. */
#include <stdio.h>
#include <string.h>

#include "model/model.h"

__attribute__((weak)) enum model_kind model_kind(const struct model *m)
{
    (void)m;
    return MODEL_TOKENIZER_ONLY;
}

__attribute__((weak)) const struct axmodel_layout *model_axmodel(const struct model *m)
{
    (void)m;
    return NULL;
}

__attribute__((weak)) const char *model_dir(const struct model *m)
{
    (void)m;
    return "(model)";
}

__attribute__((weak)) enum ax_err model_check_not_lfs(const char *path, char *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return ax_fail(err, AX_ENOTFOUND, "%s: cannot open", path);
    char head[64] = "";
    size_t n = fread(head, 1, sizeof head - 1, f);
    fclose(f);
    head[n] = '\0';
    if (!strncmp(head, "version https://git-lfs.github.com/spec/v1", 42))
        return ax_fail(err, AX_ELFS, "%s is a Git LFS pointer, not the file: run `axserve pull`",
                       path);
    return AX_OK;
}
