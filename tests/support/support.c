// support.c: test helpers (see support.h).
#include "tests/support/support.h"

#include <arpa/inet.h>
#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_CHILDREN 128
static pid_t children[MAX_CHILDREN];
static int nchildren;
static int atexit_set;

// ts_run_suite names a file here before the tests run; the forked tests
// append every directory ts_tmpdir makes to it. A directory still present
// after the run belongs to a test that ended without its teardown (a failed
// assertion ends the forked test at once, a timeout kills it).
static char registry[512];

void ts_tmpdir(char *out, size_t n)
{
    const char *base = getenv("TMPDIR");
    snprintf(out, n, "%s/canopy-test-XXXXXX", base && *base ? base : "/tmp");
    if (mkdtemp(out) == NULL) {
        perror("mkdtemp");
        abort();
    }
    FILE *f = registry[0] ? fopen(registry, "a") : NULL;
    if (f) {
        fprintf(f, "%s\n", out);
        fclose(f);
    }
}

// print_tail writes the last lines of the log file at path to stderr.
static int print_tail(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)ftw;
    size_t len = strlen(path);
    if (flag != FTW_F || len < 4 || strcmp(path + len - 4, ".log") != 0)
        return 0;
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    const long keep = 4000; // bytes: about the last 30 lines
    if (st->st_size > keep)
        fseek(f, -keep, SEEK_END);
    fprintf(stderr, "--- last lines of %s\n", path);
    char line[1024];
    bool first = st->st_size > keep;
    while (fgets(line, sizeof line, f)) {
        if (!first) // the first line after a seek is usually cut
            fputs(line, stderr);
        first = false;
    }
    fclose(f);
    return 0;
}

// clean_left_behind prints the end of every log under the directories a
// test left behind and removes them, so a failure shows what the daemons
// said and leaves nothing. The daemons are gone by then: they die with the
// test process (PR_SET_PDEATHSIG).
static void clean_left_behind(void)
{
    FILE *f = fopen(registry, "r");
    char dir[512];
    while (f && fgets(dir, sizeof dir, f)) {
        dir[strcspn(dir, "\n")] = 0;
        struct stat st;
        if (dir[0] && stat(dir, &st) == 0) {
            nftw(dir, print_tail, 16, FTW_PHYS);
            ts_rmtree(dir);
        }
    }
    if (f)
        fclose(f);
    unlink(registry);
    registry[0] = 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void ts_rmtree(const char *dir)
{
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int ts_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        perror("ts_free_port");
        abort();
    }
    int port = ntohs(a.sin_port);
    close(fd);
    return port;
}

void ts_source_path(const char *rel, char *out, size_t n)
{
    const char *root = getenv("CANOPY_SOURCE_ROOT");
    snprintf(out, n, "%s/%s", root && *root ? root : ".", rel);
}

const char *ts_canopy_bin(void)
{
    const char *b = getenv("CANOPY_BIN");
    return b && *b ? b : "canopy";
}

void ts_reap_all(void)
{
    for (int i = 0; i < nchildren; i++) {
        if (children[i] > 0) {
            kill(-children[i], SIGKILL);
            kill(children[i], SIGKILL);
            waitpid(children[i], NULL, 0);
            children[i] = 0;
        }
    }
    nchildren = 0;
}

pid_t ts_spawn(char *const argv[], const char *log_path)
{
    if (!atexit_set) {
        atexit(ts_reap_all);
        atexit_set = 1;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        // Die with the test process, even when a failed assertion ends it
        // without running teardown.
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        setpgid(0, 0);
        if (log_path) {
            int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
            if (fd >= 0) {
                dup2(fd, 1);
                dup2(fd, 2);
                close(fd);
            }
        }
        execvp(argv[0], argv);
        perror(argv[0]);
        _exit(127);
    }
    setpgid(pid, pid);
    if (nchildren < MAX_CHILDREN)
        children[nchildren++] = pid;
    return pid;
}

static void forget(pid_t pid)
{
    for (int i = 0; i < nchildren; i++)
        if (children[i] == pid)
            children[i] = 0;
}

bool ts_wait_exit(pid_t pid, int timeout_ms, int *status)
{
    for (int waited = 0; waited <= timeout_ms; waited += 10) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) {
            if (status)
                *status = st;
            forget(pid);
            return true;
        }
        struct timespec ts = {0, 10 * 1000000};
        nanosleep(&ts, NULL);
    }
    return false;
}

void ts_kill(pid_t pid, int sig)
{
    if (kill(-pid, sig) != 0)
        kill(pid, sig);
}

bool ts_wait_until(bool (*pred)(void *), void *arg, int timeout_ms)
{
    for (int waited = 0;; waited += 10) {
        if (pred(arg))
            return true;
        if (waited >= timeout_ms)
            return false;
        struct timespec ts = {0, 10 * 1000000};
        nanosleep(&ts, NULL);
    }
}

bool ts_file_contains(const char *path, const char *needle)
{
    char *buf = ts_read_file(path);
    bool found = buf && strstr(buf, needle) != NULL;
    free(buf);
    return found;
}

void ts_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
        perror(path);
        abort();
    }
}

int ts_run_suite(Suite *s)
{
    const char *base = getenv("TMPDIR");
    snprintf(registry, sizeof registry, "%s/canopy-test-dirs-XXXXXX",
             base && *base ? base : "/tmp");
    int fd = mkstemp(registry);
    if (fd < 0)
        registry[0] = 0;
    else
        close(fd);
    SRunner *r = srunner_create(s);
    srunner_run_all(r, CK_NORMAL);
    if (registry[0])
        clean_left_behind();
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

bool ts_only_entry(const char *dir, char *out, size_t n)
{
    DIR *d = opendir(dir);
    if (!d)
        return false;
    struct dirent *e;
    bool found = false;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            snprintf(out, n, "%s/%s", dir, e->d_name);
            found = true;
        }
    closedir(d);
    return found;
}

bool ts_xml_parses(const char *path)
{
    pid_t pid = fork();
    if (pid == 0) {
        execlp("python3", "python3", "-c",
               "import sys, xml.etree.ElementTree as E; E.parse(sys.argv[1])", path, (char *)NULL);
        _exit(127);
    }
    int st = 0;
    return pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

char *ts_read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    size_t got = buf ? fread(buf, 1, (size_t)n, f) : 0;
    fclose(f);
    if (buf)
        buf[got] = 0;
    return buf;
}
