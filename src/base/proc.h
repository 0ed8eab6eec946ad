/* base/proc.h — run a child program and wait for it (or start it in the background),
 * optionally as another user.
 *
 * Ownership: argv is borrowed. Output (stdout + stderr together) is captured into the
 * caller's buffer (truncated, always NUL-terminated) when out != NULL, else inherited. */
#ifndef TSI_BASE_PROC_H
#define TSI_BASE_PROC_H

#include <stddef.h>
#include <sys/types.h>

#include "base/error.h"

/* Runs argv[0] (searched in PATH) and waits. When `user` is non-NULL and we are root,
 * the child drops to that user (its uid, gid and groups) before exec.
 * Returns the exit status (>= 0), or a negative TSI_E_* when it could not be run or was
 * killed by a signal. */
int tsi_proc_run(char *const argv[], const char *user, char *out, size_t outlen, tsi_error *err);

/* Starts argv[0] in the background, in a session of its own (setsid: its process group is
 * its pid, so kill(-pid, sig) reaches it and its children), stdin from /dev/null, stdout
 * and stderr appended to `log` (made 0600, owned by `user` when root). Does not wait:
 * the child outlives the caller. Returns 0 and its pid, or a negative TSI_E_*. */
int tsi_proc_spawn(char *const argv[], const char *user, const char *log, pid_t *pid,
                   tsi_error *err);

/* Looks up a user; returns 0 and fills uid/gid, or TSI_E_NOTFOUND. */
int tsi_proc_user(const char *user, uid_t *uid, gid_t *gid);

/* True when `user` can search (x) every directory down to and including `path` (which
 * must exist). Run as root, it answers for the given user, not for root. */
int tsi_proc_user_can_reach(const char *user, const char *path);

#endif
