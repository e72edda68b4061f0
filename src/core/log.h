/*
 * log.h — structured log lines.
 *
 * One event is one line, by default JSON:
 *   {"ts":"2026-11-27T10:20:00.123Z","level":"info","component":"http","msg":"listening on 127.0.0.1:8080"}
 * written to stderr (or the fd given to log_set_fd) with a single write(2),
 * so lines from several processes or threads sharing a file or pipe never
 * interleave. A line is capped at LOG_LINE_MAX bytes (PIPE_BUF, the size up
 * to which a pipe write is atomic); a longer message is cut at a UTF-8
 * boundary and ends in "...". Invalid UTF-8 in a message is replaced by '?'
 * so that every line stays valid JSON whatever the message carries (request
 * data often ends up in messages).
 *
 * The log_* macros test the level before evaluating any argument, so a
 * disabled debug line costs one comparison.
 *
 * Threads: log_write may be called from any thread (it keeps no shared
 * mutable state). The setters are meant for start-up, before other threads
 * exist; they are plain stores. A line that cannot be written (EAGAIN on a
 * non-blocking stderr, EPIPE, ...) is dropped rather than block the loop.
 * errno is preserved across every call here.
 */
#ifndef STORM_CORE_LOG_H
#define STORM_CORE_LOG_H

/* Not LOG_DEBUG/LOG_INFO: those are <syslog.h> macros. */
enum {
  LOG_LEVEL_DEBUG = 0,
  LOG_LEVEL_INFO = 1,
  LOG_LEVEL_WARN = 2,
  LOG_LEVEL_ERROR = 3,
};

typedef enum {
  LOG_FORMAT_JSON = 0, /* default: for machines */
  LOG_FORMAT_TEXT = 1, /* "2026-11-27T10:20:00.123Z INFO  http: msg" for a terminal */
} log_format_t;

#define LOG_LINE_MAX 4096

/* The minimum level written; read by the macros. Use log_set_level. */
extern int log__min_level;

/* Levels outside debug..error are clamped. */
void log_set_level(int level);
int log_get_level(void);
/* "debug", "info", "warn" (or "warning"), "error", case-insensitive.
 * Returns the LOG_LEVEL_* value or -EINVAL. */
int log_level_parse(const char *s);
/* Lower-case name of a level ("info"); "?" if out of range. */
const char *log_level_name(int level);
/* Where lines go; default 2. The fd is not owned (never closed here). */
void log_set_fd(int fd);
void log_set_format(log_format_t f);

/* Writes one line if level >= the current level. Prefer the macros. */
void log_write(int level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_at(level, component, ...)                                          \
  do {                                                                         \
    if ((level) >= log__min_level) log_write((level), (component), __VA_ARGS__); \
  } while (0)

#define log_debug(component, ...) log_at(LOG_LEVEL_DEBUG, component, __VA_ARGS__)
#define log_info(component, ...) log_at(LOG_LEVEL_INFO, component, __VA_ARGS__)
#define log_warn(component, ...) log_at(LOG_LEVEL_WARN, component, __VA_ARGS__)
#define log_error(component, ...) log_at(LOG_LEVEL_ERROR, component, __VA_ARGS__)

#endif
