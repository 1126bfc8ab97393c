/* clock.h - the monotonic clock, for durations (timings, timeouts). */
#ifndef AX_UTIL_CLOCK_H
#define AX_UTIL_CLOCK_H

/* Milliseconds on the monotonic clock since an arbitrary start. */
double ax_now_ms(void);

#endif
