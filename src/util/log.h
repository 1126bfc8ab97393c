/* log.h - one-line diagnostics on stderr. Never called from hot loops. */
#ifndef AX_UTIL_LOG_H
#define AX_UTIL_LOG_H

enum ax_log_level { AX_LOG_DEBUG = 0, AX_LOG_INFO = 1, AX_LOG_WARN = 2, AX_LOG_ERROR = 3 };

void ax_log_set_level(enum ax_log_level lvl);
void ax_log(enum ax_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define ax_info(...) ax_log(AX_LOG_INFO, __VA_ARGS__)
#define ax_warn(...) ax_log(AX_LOG_WARN, __VA_ARGS__)
#define ax_error(...) ax_log(AX_LOG_ERROR, __VA_ARGS__)
#define ax_debug(...) ax_log(AX_LOG_DEBUG, __VA_ARGS__)

#endif
