// robit-init fs: the file tools of the agent, run inside the sandbox as the sandbox's user.
//
// Every path is walked component by component from an fd of /work: no `..`, and no symbolic link
// (final or intermediate) is ever followed, so nothing outside /work can be reached even when the
// workspace is changed concurrently. runsc 20221219 has no openat2, and its openat follows a final
// symlink despite O_NOFOLLOW when O_DIRECTORY is given: so every entry is lstat'ed first and the
// opened file must be that very inode (see open_nofollow). Directory entries are read in sorted order.
//
//   fs read PATH FIRST_LINE MAX_LINES MAX_BYTES   header line, then the lines
//   fs write PATH                                 content on stdin
//   fs edit PATH one|all                          stdin: "OLD_LEN NEW_LEN\n" OLD NEW
//   fs list PATH MAX_DEPTH MAX_ENTRIES            records "T\tSIZE\tPATH\0"
//   fs search PATH regex|literal PATTERN GLOB MAX_MATCHES   records "PATH\0LINE\0TEXT\0"
//
// Exit 0: done, stdout as above. Exit 3: a tool error, its one-line message on stderr (for the model).
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef FS_ROOT
#define FS_ROOT "/work"  // where the workspace is opened (a host test build may point elsewhere)
#endif
#define TOOL_ERROR 3
#define MAX_COMPONENTS 512
#define MAX_EDIT_BYTES (64L << 20)
#define MAX_SEARCH_FILE (8L << 20)

static int fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return TOOL_ERROR;
}

// Opens `name` in `dir` without following a symbolic link, also where O_NOFOLLOW is not honoured:
// the entry is lstat'ed first, and what was opened must be that same inode (a symlink swapped in
// between fails the check). ELOOP for a symlink.
static int open_nofollow(int dir, const char *name, int flags, struct stat *out) {
    struct stat before, after;
    if (fstatat(dir, name, &before, AT_SYMLINK_NOFOLLOW) != 0) return -1;
    if (S_ISLNK(before.st_mode)) {
        errno = ELOOP;
        return -1;
    }
    int fd = openat(dir, name, flags | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return -1;
    if (fstat(fd, &after) != 0 || after.st_dev != before.st_dev || after.st_ino != before.st_ino) {
        close(fd);
        errno = ELOOP;
        return -1;
    }
    if (out) *out = after;
    return fd;
}

// Why `name` in `dir` could not be opened, in words the model can act on.
static int open_failure(int dir, const char *name, const char *shown, int err) {
    struct stat st;
    if (err == ELOOP || (fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode)))
        return fail("%s is a symbolic link; the file tools do not follow symbolic links (they could lead outside /work): use its target's path inside /work", shown);
    if (err == ENOENT) return fail("%s does not exist", shown);
    if (err == ENOTDIR) return fail("%s is not a directory", shown);
    if (err == EACCES || err == EPERM) return fail("%s: permission denied", shown);
    if (err == ENAMETOOLONG) return fail("%s: a path component is longer than 255 bytes", shown);
    return fail("%s: %s", shown, strerror(err));
}

// Opens the directory holding the last component of `path` (relative to /work, or absolute under
// /work) and points *leaf at that component, NULL when the path is /work itself. With `create`,
// missing directories are made. Returns the fd, or -TOOL_ERROR after printing the reason.
static int walk(char *path, int create, const char **leaf, char *shown, size_t shownlen) {
    if (path[0] == '/') {
        if (strncmp(path, "/work", 5) != 0 || (path[5] != '/' && path[5] != 0)) {
            fail("%s is outside /work; give a path relative to /work", path);
            return -TOOL_ERROR;
        }
        path += 5;
    }
    char *parts[MAX_COMPONENTS];
    int n = 0;
    for (char *save = NULL, *p = strtok_r(path, "/", &save); p; p = strtok_r(NULL, "/", &save)) {
        if (strcmp(p, ".") == 0) continue;
        if (strcmp(p, "..") == 0) {
            fail("the path contains \"..\"; give a path inside /work without \"..\"");
            return -TOOL_ERROR;
        }
        if (n == MAX_COMPONENTS) {
            fail("the path has more than %d components", MAX_COMPONENTS);
            return -TOOL_ERROR;
        }
        parts[n++] = p;
    }
    int dir = open(FS_ROOT, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dir < 0) {
        fail("/work cannot be opened: %s", strerror(errno));
        return -TOOL_ERROR;
    }
    snprintf(shown, shownlen, "/work");
    for (int i = 0; i + 1 < n; i++) {
        size_t len = strlen(shown);
        snprintf(shown + len, shownlen - len, "/%s", parts[i]);
        int next = open_nofollow(dir, parts[i], O_RDONLY | O_DIRECTORY, NULL);
        if (next < 0 && errno == ENOENT && create) {
            if (mkdirat(dir, parts[i], 0777) != 0 && errno != EEXIST) {
                int e = errno;
                close(dir);
                fail("cannot create directory %s: %s", shown, strerror(e));
                return -TOOL_ERROR;
            }
            next = open_nofollow(dir, parts[i], O_RDONLY | O_DIRECTORY, NULL);
        }
        if (next < 0) {
            int e = errno;
            open_failure(dir, parts[i], shown, e);
            close(dir);
            return -TOOL_ERROR;
        }
        close(dir);
        dir = next;
    }
    *leaf = n ? parts[n - 1] : NULL;
    if (n) {
        size_t len = strlen(shown);
        snprintf(shown + len, shownlen - len, "/%s", parts[n - 1]);
    }
    return dir;
}

// Opens the final component without following it and checks that it is a regular file. With
// `create`, a missing file is created (O_EXCL: never through a symlink that appeared meanwhile).
static int open_regular(int dir, const char *leaf, const char *shown, int flags, int create, struct stat *st) {
    if (!leaf) return -fail("/work is a directory; use list_files to see what it holds");
    if (fstatat(dir, leaf, st, AT_SYMLINK_NOFOLLOW) == 0) {
        if (S_ISDIR(st->st_mode)) return -fail("%s is a directory; use list_files to see what it holds", shown);
        if (!S_ISREG(st->st_mode) && !S_ISLNK(st->st_mode)) return -fail("%s is not a regular file", shown);
    }
    int fd = open_nofollow(dir, leaf, flags | O_NONBLOCK, st);
    if (fd < 0 && errno == ENOENT && create) {
        fd = openat(dir, leaf, flags | O_CREAT | O_EXCL | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0666);
        if (fd >= 0 && fstat(fd, st) != 0) {
            close(fd);
            fd = -1;
        }
    }
    if (fd < 0 && errno == EEXIST) return -fail("%s was created or replaced by something else while robit opened it; try again", shown);
    if (fd < 0) return -open_failure(dir, leaf, shown, errno);
    if (!S_ISREG(st->st_mode)) {
        close(fd);
        return -fail("%s is not a regular file", shown);
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    return fd;
}

// The names in directory fd (without . and ..), sorted; *count set. The fd is consumed.
static int compare_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static char **sorted_names(int fd, size_t *count) {
    *count = 0;
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return NULL;
    }
    size_t cap = 64;
    char **names = malloc(cap * sizeof *names);
    struct dirent *e;
    while (names && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        if (*count == cap) names = realloc(names, (cap *= 2) * sizeof *names);
        if (names) names[(*count)++] = strdup(e->d_name);
    }
    closedir(d);
    if (names) qsort(names, *count, sizeof *names, compare_names);
    return names;
}

// A failed write, with what to do when the workspace's filesystem (limits.disk) is full.
static int write_failure(const char *shown, int err) {
    if (err == ENOSPC || err == EDQUOT)
        return fail("cannot write %s: no space left: the workspace is full (the task's limits.disk); the file may be incomplete. Delete files or write less", shown);
    return fail("cannot write %s: %s", shown, strerror(err));
}

static int write_all(int fd, const char *buf, size_t len) {
    while (len) {
        ssize_t w = write(fd, buf, len);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        buf += w;
        len -= (size_t)w;
    }
    return 0;
}

// Reads all of fd up to `max` bytes into a malloc'd buffer (NUL-terminated); *len = bytes read,
// *over = 1 when there was more.
static char *read_all(int fd, long max, size_t *len, int *over) {
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    *over = 0;
    for (;;) {
        if (!buf) return NULL;
        if (n == cap) {
            if ((long)cap >= max) {
                char c;
                if (read(fd, &c, 1) > 0) *over = 1;
                break;
            }
            cap = (long)(cap * 2) > max ? (size_t)max : cap * 2;
            buf = realloc(buf, cap + 1);
            continue;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            free(buf);
            return NULL;
        }
        if (r == 0) break;
        n += (size_t)r;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

static int fs_read(char *path, long first, long maxlines, long maxbytes) {
    char shown[8192];
    const char *leaf;
    int dir = walk(path, 0, &leaf, shown, sizeof shown);
    if (dir < 0) return -dir;
    struct stat st;
    int fd = open_regular(dir, leaf, shown, O_RDONLY, 0, &st);
    close(dir);
    if (fd < 0) return -fd;
    if (first < 1) first = 1;
    char *out = malloc((size_t)maxbytes + 1);
    if (!out) return fail("out of memory");
    size_t used = 0;
    long line = 1;
    int cut = 0, more = 0;
    static char buf[1 << 16];
    for (;;) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return fail("%s cannot be read: %s", shown, strerror(errno));
        if (r == 0) break;
        for (ssize_t i = 0; i < r; i++) {
            if (line >= first + maxlines) {
                more = 1;
                break;
            }
            if (line >= first) {
                if (used == (size_t)maxbytes) {
                    cut = 1;
                    more = 1;
                    break;
                }
                out[used++] = buf[i];
            }
            if (buf[i] == '\n') line++;
        }
        if (more) break;
    }
    close(fd);
    if (cut) {
        // End at the last complete line when there is one.
        size_t keep = used;
        while (keep > 0 && out[keep - 1] != '\n') keep--;
        if (keep > 0) used = keep;
    }
    // Lines emitted: count newlines of what is kept to report the next line to read.
    long next = first;
    for (size_t i = 0; i < used; i++) if (out[i] == '\n') next++;
    if (used > 0 && out[used - 1] != '\n') next++;
    printf("size=%lld first=%ld next=%ld more=%d cut=%d\n", (long long)st.st_size, first, next, more, cut);
    fflush(stdout);
    write_all(1, out, used);
    return 0;
}

static int fs_write(char *path) {
    char shown[8192];
    const char *leaf;
    int dir = walk(path, 1, &leaf, shown, sizeof shown);
    if (dir < 0) return -dir;
    struct stat st;
    int fd = open_regular(dir, leaf, shown, O_WRONLY, 1, &st);
    close(dir);
    if (fd < 0) return -fd;
    if (ftruncate(fd, 0) != 0) return write_failure(shown, errno);
    static char buf[1 << 16];
    long long total = 0;
    for (;;) {
        ssize_t r = read(0, buf, sizeof buf);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return fail("cannot read the content: %s", strerror(errno));
        if (r == 0) break;
        if (write_all(fd, buf, (size_t)r) != 0) return write_failure(shown, errno);
        total += r;
    }
    if (close(fd) != 0) return write_failure(shown, errno);
    printf("wrote=%lld\n", total);
    return 0;
}

static int fs_edit(char *path, int all) {
    char shown[8192];
    const char *leaf;
    int dir = walk(path, 0, &leaf, shown, sizeof shown);
    if (dir < 0) return -dir;
    size_t inlen;
    int over;
    char *in = read_all(0, 2 * MAX_EDIT_BYTES + 64, &inlen, &over);
    if (!in) return fail("cannot read the edit");
    char *nl = memchr(in, '\n', inlen);
    unsigned long oldlen, newlen;
    if (!nl || sscanf(in, "%lu %lu", &oldlen, &newlen) != 2 || (size_t)(nl + 1 - in) + oldlen + newlen != inlen || oldlen == 0)
        return fail("malformed edit request");
    const char *old = nl + 1, *repl = old + oldlen;
    struct stat st;
    int fd = open_regular(dir, leaf, shown, O_RDWR, 0, &st);
    close(dir);
    if (fd < 0) return -fd;
    size_t len;
    char *text = read_all(fd, MAX_EDIT_BYTES, &len, &over);
    if (!text) return fail("%s cannot be read: %s", shown, strerror(errno));
    if (over) return fail("%s is larger than %ld MiB; edit it with the shell tool", shown, MAX_EDIT_BYTES >> 20);
    long count = 0;
    for (const char *p = text; (p = memmem(p, len - (size_t)(p - text), old, oldlen)) != NULL; p += oldlen) count++;
    if (count == 0)
        return fail("old_string was not found in %s; read the file and copy the exact text, whitespace and indentation included", shown);
    if (count > 1 && !all)
        return fail("old_string occurs %ld times in %s; include more surrounding lines so it is unique, or set replace_all to replace every occurrence", count, shown);
    size_t outlen = len + (size_t)count * newlen - (size_t)count * oldlen;
    char *out = malloc(outlen + 1);
    if (!out) return fail("out of memory");
    size_t o = 0;
    const char *p = text;
    for (const char *m; (m = memmem(p, len - (size_t)(p - text), old, oldlen)) != NULL; p = m + oldlen) {
        memcpy(out + o, p, (size_t)(m - p));
        o += (size_t)(m - p);
        memcpy(out + o, repl, newlen);
        o += newlen;
    }
    memcpy(out + o, p, len - (size_t)(p - text));
    if (lseek(fd, 0, SEEK_SET) != 0 || write_all(fd, out, outlen) != 0 || ftruncate(fd, (off_t)outlen) != 0 || close(fd) != 0)
        return write_failure(shown, errno);
    printf("replaced=%ld\n", count);
    return 0;
}

static long listed, list_max;

static void list_dir(int fd, const char *rel, int depth, int maxdepth) {
    size_t n;
    char **names = sorted_names(dup(fd), &n);
    for (size_t i = 0; names && i < n; i++) {
        const char *name = names[i];
        if (listed >= list_max) {
            listed++;
            break;
        }
        struct stat st;
        if (fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
        char type = S_ISDIR(st.st_mode) ? 'd' : S_ISREG(st.st_mode) ? 'f' : S_ISLNK(st.st_mode) ? 'l' : 'o';
        char path[8192];
        snprintf(path, sizeof path, "%s%s%s", rel, *rel ? "/" : "", name);
        printf("%c\t%lld\t%s%c", type, (long long)st.st_size, path, 0);
        listed++;
        if (type == 'd' && depth < maxdepth && strcmp(name, ".git") != 0) {
            int sub = open_nofollow(fd, name, O_RDONLY | O_DIRECTORY, NULL);
            if (sub >= 0) list_dir(sub, path, depth + 1, maxdepth);  // closes sub
        }
    }
    close(fd);
}

static int open_target_dir(int dir, const char *leaf, const char *shown) {
    if (!leaf) return dir;
    int fd = open_nofollow(dir, leaf, O_RDONLY | O_DIRECTORY, NULL);
    if (fd < 0) {
        int e = errno;
        int r = open_failure(dir, leaf, shown, e);
        close(dir);
        return -r;
    }
    close(dir);
    return fd;
}

static int fs_list(char *path, int maxdepth, long maxentries) {
    char shown[8192];
    const char *leaf;
    int dir = walk(path, 0, &leaf, shown, sizeof shown);
    if (dir < 0) return -dir;
    int fd = open_target_dir(dir, leaf, shown);
    if (fd < 0) return -fd;
    list_max = maxentries;
    list_dir(fd, "", 1, maxdepth);  // closes fd
    if (listed > list_max) printf("!\ttruncated\t%c", 0);
    return 0;
}

static struct {
    regex_t re;
    int literal;
    const char *pattern;
    size_t patlen;
    const char *glob;
    long matches, max;
} search;

static int line_matches(char *line, size_t len) {
    if (search.literal) return memmem(line, len, search.pattern, search.patlen) != NULL;
    return regexec(&search.re, line, 0, NULL, 0) == 0;
}

static void search_file(int dir, const char *name, const char *rel) {
    if (search.glob[0]) {
        const char *subject = strchr(search.glob, '/') ? rel : name;
        if (fnmatch(search.glob, subject, strchr(search.glob, '/') ? FNM_PATHNAME : 0) != 0) return;
    }
    struct stat st;
    int fd = open_nofollow(dir, name, O_RDONLY | O_NONBLOCK, &st);
    if (fd < 0) return;
    if (!S_ISREG(st.st_mode) || st.st_size > MAX_SEARCH_FILE) {
        close(fd);
        return;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    size_t len;
    int over;
    char *text = read_all(fd, MAX_SEARCH_FILE, &len, &over);
    close(fd);
    if (!text) return;
    if (memchr(text, 0, len < 8192 ? len : 8192)) {  // binary
        free(text);
        return;
    }
    long lineno = 1;
    for (char *p = text; p < text + len && search.matches <= search.max; lineno++) {
        char *end = memchr(p, '\n', (size_t)(text + len - p));
        if (!end) end = text + len;
        *end = 0;
        if (line_matches(p, (size_t)(end - p))) {
            search.matches++;
            if (search.matches > search.max) break;
            int shownlen = end - p > 400 ? 400 : (int)(end - p);
            printf("%s%c%ld%c%.*s%c", rel, 0, lineno, 0, shownlen, p, 0);
        }
        p = end + 1;
    }
    free(text);
}

static void search_dir(int fd, const char *rel, int depth) {
    size_t n;
    char **names = sorted_names(dup(fd), &n);
    for (size_t i = 0; names && i < n && search.matches <= search.max; i++) {
        const char *name = names[i];
        if (strcmp(name, ".git") == 0) continue;
        struct stat st;
        if (fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
        char path[8192];
        snprintf(path, sizeof path, "%s%s%s", rel, *rel ? "/" : "", name);
        if (S_ISDIR(st.st_mode) && depth < 64) {
            int sub = open_nofollow(fd, name, O_RDONLY | O_DIRECTORY, NULL);
            if (sub >= 0) search_dir(sub, path, depth + 1);
        } else if (S_ISREG(st.st_mode)) {
            search_file(fd, name, path);
        }
    }
    close(fd);
}

static int fs_search(char *path, const char *mode, const char *pattern, const char *glob, long max) {
    search.literal = strcmp(mode, "literal") == 0;
    search.pattern = pattern;
    search.patlen = strlen(pattern);
    search.glob = glob;
    search.max = max;
    if (!search.literal) {
        int rc = regcomp(&search.re, pattern, REG_EXTENDED | REG_NOSUB);
        if (rc != 0) {
            char msg[256];
            regerror(rc, &search.re, msg, sizeof msg);
            return fail("the pattern is not a valid POSIX extended regular expression: %s (set literal to true to search for the text as is)", msg);
        }
    }
    char shown[8192];
    const char *leaf;
    int dir = walk(path, 0, &leaf, shown, sizeof shown);
    if (dir < 0) return -dir;
    struct stat st;
    if (leaf && fstatat(dir, leaf, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode)) {
        // One file: report it under its path relative to /work.
        const char *rel = shown + 6;
        search_file(dir, leaf, rel);
        close(dir);
    } else {
        int fd = open_target_dir(dir, leaf, shown);
        if (fd < 0) return -fd;
        search_dir(fd, leaf ? shown + 6 : "", 0);
    }
    if (search.matches > search.max) printf("!%c", 0);
    return 0;
}

int run_fs(int argc, char **argv) {
    // argv[0] is the operation.
    if (argc == 5 && strcmp(argv[0], "read") == 0)
        return fs_read(argv[1], atol(argv[2]), atol(argv[3]), atol(argv[4]) > 0 ? atol(argv[4]) : 1);
    if (argc == 2 && strcmp(argv[0], "write") == 0) return fs_write(argv[1]);
    if (argc == 3 && strcmp(argv[0], "edit") == 0) return fs_edit(argv[1], strcmp(argv[2], "all") == 0);
    if (argc == 4 && strcmp(argv[0], "list") == 0) return fs_list(argv[1], atoi(argv[2]), atol(argv[3]));
    if (argc == 6 && strcmp(argv[0], "search") == 0) return fs_search(argv[1], argv[2], argv[3], argv[4], atol(argv[5]));
    fprintf(stderr, "usage: robit-init fs read PATH FIRST MAX_LINES MAX_BYTES | write PATH | edit PATH one|all | "
                    "list PATH MAX_DEPTH MAX_ENTRIES | search PATH regex|literal PATTERN GLOB MAX\n");
    return 2;
}
