/* base/proc.c — see proc.h */
#include "base/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

int tsi_proc_user(const char *user, uid_t *uid, gid_t *gid)
{
    struct passwd pw, *res = NULL;
    char buf[4096];
    if (getpwnam_r(user, &pw, buf, sizeof buf, &res) != 0 || res == NULL)
        return TSI_E_NOTFOUND;
    *uid = pw.pw_uid;
    *gid = pw.pw_gid;
    return 0;
}

static int drop_to(const char *user)
{
    uid_t uid;
    gid_t gid;
    if (tsi_proc_user(user, &uid, &gid) < 0)
        return -1;
    if (initgroups(user, gid) < 0 || setgid(gid) < 0 || setuid(uid) < 0)
        return -1;
    struct passwd *pw = getpwuid(uid);
    if (pw) {
        setenv("HOME", pw->pw_dir, 1);
        setenv("USER", user, 1);
        setenv("LOGNAME", user, 1);
    }
    return 0;
}

/* In the child: stdout and stderr to `outfd` (>= 0), stdin from /dev/null, drop to
 * `user` (non-NULL only as root), exec. Never returns. */
static void child_exec(char *const argv[], const char *user, int outfd)
{
    if (outfd >= 0) {
        dup2(outfd, STDOUT_FILENO);
        dup2(outfd, STDERR_FILENO);
    }
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0)
        dup2(devnull, STDIN_FILENO);
    if (user && drop_to(user) < 0) {
        fprintf(stderr, "cannot switch to user %s: %s\n", user, strerror(errno));
        _exit(126);
    }
    signal(SIGPIPE, SIG_DFL);
    execvp(argv[0], argv);
    fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

int tsi_proc_run(char *const argv[], const char *user, char *out, size_t outlen, tsi_error *err)
{
    int pipefd[2] = {-1, -1};
    if (out && pipe2(pipefd, O_CLOEXEC) < 0)
        return tsi_error_set(err, TSI_E_PROC, "cannot create a pipe", "%s", strerror(errno));
    int as_other = user != NULL && geteuid() == 0;
    pid_t pid = fork();
    if (pid < 0) {
        if (out) {
            close(pipefd[0]);
            close(pipefd[1]);
        }
        return tsi_error_set(err, TSI_E_PROC, "cannot fork", "%s", strerror(errno));
    }
    if (pid == 0)
        child_exec(argv, as_other ? user : NULL, out ? pipefd[1] : -1);
    size_t used = 0;
    if (out) {
        close(pipefd[1]);
        char tmp[4096];
        ssize_t r;
        while ((r = read(pipefd[0], tmp, sizeof tmp)) != 0) {
            if (r < 0) {
                if (errno == EINTR)
                    continue;
                break;
            }
            if (outlen > 0 && used < outlen - 1) {
                size_t take = (size_t)r;
                if (take > outlen - 1 - used)
                    take = outlen - 1 - used;
                memcpy(out + used, tmp, take);
                used += take;
            }
        }
        close(pipefd[0]);
        if (outlen > 0)
            out[used] = '\0';
    }
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR)
            return tsi_error_set(err, TSI_E_PROC, "cannot wait for child", "%s: %s", argv[0],
                                 strerror(errno));
    }
    if (WIFSIGNALED(status))
        return tsi_error_set(err, TSI_E_PROC, "child killed by a signal", "%s: signal %d", argv[0],
                             WTERMSIG(status));
    int code = WEXITSTATUS(status);
    if (code == 127)
        return tsi_error_set(err, TSI_E_PROC, "cannot run program", "%s", argv[0]);
    return code;
}

int tsi_proc_spawn(char *const argv[], const char *user, const char *log, pid_t *pid,
                   tsi_error *err)
{
    int as_other = user != NULL && geteuid() == 0;
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0)
        return tsi_error_set(err, TSI_E_IO, "cannot open the log file", "%s: %s", log,
                             strerror(errno));
    if (as_other) {
        uid_t uid;
        gid_t gid;
        if (tsi_proc_user(user, &uid, &gid) < 0 || fchown(fd, uid, gid) < 0) {
            close(fd);
            return tsi_error_set(err, TSI_E_PROC, "cannot give the log file to the user", "%s: %s",
                                 user, log);
        }
    }
    pid_t p = fork();
    if (p < 0) {
        close(fd);
        return tsi_error_set(err, TSI_E_PROC, "cannot fork", "%s", strerror(errno));
    }
    if (p == 0) {
        setsid();
        child_exec(argv, as_other ? user : NULL, fd);
    }
    close(fd);
    *pid = p;
    return 0;
}

int tsi_proc_user_can_reach(const char *user, const char *path)
{
    char *const argv[] = {"sh", "-c", "test -x \"$1\"", "sh", (char *)path, NULL};
    return tsi_proc_run(argv, user, NULL, 0, NULL) == 0;
}
