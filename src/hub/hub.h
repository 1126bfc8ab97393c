/* hub.h - downloads a model repository from a Hugging Face style hub.
 *
 * Protocol (the public hub API):
 *   GET {base}/api/models/{repo}?blobs=true
 *       -> {"siblings": [{"rfilename": "path", "size": N,
 *                         "lfs": {"sha256": "hex", "size": N}}, ...]}
 *   GET {base}/{repo}/resolve/main/{path}   (may redirect; Range honoured)
 * Files are written to DIR/path.part, resumed with a Range request after a
 * cut, checked against the listed size (and for the Git LFS pointer
 * signature), then renamed into place. Files already present with the
 * listed size are skipped. Every name in the listing is untrusted: only
 * plain relative paths (no "..", no absolute paths) are accepted. Files
 * the listing gives an lfs.sha256 for are hashed after download and must
 * match (a file already present is checked by size only). */
#ifndef AX_HUB_HUB_H
#define AX_HUB_HUB_H

#include <stdio.h>

#include "util/err.h"

#define HUB_MAX_INCLUDE 16

struct hub_opts {
    const char *repo;     /* "owner/name" */
    const char *dir;      /* destination directory (created) */
    const char *base_url; /* e.g. "https://huggingface.co" (no trailing slash needed) */
    const char *token;    /* sent as "Authorization: Bearer ..." if not NULL */
    const char *include[HUB_MAX_INCLUDE]; /* fnmatch patterns; none = all files */
    int n_include;
    int retries; /* attempts per file after a cut (>= 1) */
    FILE *log;   /* progress lines, may be NULL */
};

enum ax_err hub_pull(const struct hub_opts *o, char *err);

/* 1 if repo looks like "owner/name" with [A-Za-z0-9._-] characters. */
int hub_valid_repo(const char *repo);
/* 1 if a listed file name is a safe relative path. */
int hub_safe_path(const char *p);

#endif
