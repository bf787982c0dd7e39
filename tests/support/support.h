// support.h: helpers shared by test suites: temporary directories, free
// ports, child processes that are always reaped, and waiting on conditions
// with a deadline instead of sleeping.
#ifndef CANOPY_TEST_SUPPORT_H
#define CANOPY_TEST_SUPPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

// ts_tmpdir creates a fresh directory under $TMPDIR (or /tmp) and writes its
// path to out (size n). Aborts the test process on failure. A directory
// still there when ts_run_suite's tests have run (a failed assertion ends a
// test before its teardown) has the last lines of every *.log file under it
// printed to stderr, and is then removed.
void ts_tmpdir(char *out, size_t n);

// ts_rmtree removes a directory tree made by ts_tmpdir.
void ts_rmtree(const char *dir);

// ts_free_port returns a TCP port on 127.0.0.1 that was free a moment ago.
int ts_free_port(void);

// ts_source_path writes $CANOPY_SOURCE_ROOT/rel into out.
void ts_source_path(const char *rel, char *out, size_t n);

// ts_canopy_bin returns the canopy executable: $CANOPY_BIN, which meson sets
// for integration tests.
const char *ts_canopy_bin(void);

// ts_spawn starts argv[0] with argv, stdout and stderr appended to log_path
// (NULL = inherit), in its own process group. The child is recorded so
// ts_reap_all can kill it. Returns the pid or -1.
pid_t ts_spawn(char *const argv[], const char *log_path);

// ts_wait_exit waits up to timeout_ms for pid; returns true and sets *status
// (as from waitpid) if it exited.
bool ts_wait_exit(pid_t pid, int timeout_ms, int *status);

// ts_kill sends sig to pid's process group.
void ts_kill(pid_t pid, int sig);

// ts_reap_all SIGKILLs and reaps every child started by ts_spawn that is
// still running. Call it in teardown; it is also registered with atexit.
void ts_reap_all(void);

// ts_wait_until polls pred(arg) every 10 ms until it returns true or
// timeout_ms passes; returns the last result.
bool ts_wait_until(bool (*pred)(void *), void *arg, int timeout_ms);

// ts_file_contains reports whether the file at path contains needle.
bool ts_file_contains(const char *path, const char *needle);

// ts_write_file writes text to path; aborts on failure.
void ts_write_file(const char *path, const char *text);

// ts_xml_parses reports whether the file at path is well-formed XML (read
// by Python's xml.etree, an independent parser).
bool ts_xml_parses(const char *path);

// ts_read_file returns the file's content (malloc'd, NUL-terminated) or NULL.
char *ts_read_file(const char *path);

// ts_only_entry writes dir/NAME into out for the one entry of dir (not "."
// or ".."), e.g. the one sweep or job directory a test made. Returns false
// if dir cannot be read or is empty.
bool ts_only_entry(const char *dir, char *out, size_t n);

struct Suite;
// ts_run_suite runs a Check suite (taking ownership) and returns the
// process exit status: EXIT_SUCCESS when every test passed.
int ts_run_suite(struct Suite *s);

#endif
