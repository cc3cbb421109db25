/*
 * control.c - the control socket: accept clients, register VMs, answer
 * status, reclaim, drain and balloon requests.
 *
 * The socket is AF_UNIX SOCK_SEQPACKET (see PROTOCOL.md).  A connection
 * carries requests until it closes.  A REGISTER that succeeds hands the
 * connection to the new VM: from then on its closing means the client
 * detached.  Every rejected request gets an ERROR_REPLY or a
 * REGISTER_REPLY with a negative status and a reason, every received fd
 * is closed on every error path, and the daemon goes on serving others.
 *
 * The peer's pid comes from SO_PEERCRED, not from the message: a client
 * cannot claim another process's memory.
 *
 * Who may do what (PROTOCOL.md, "Access control"): the socket is mode
 * 0660, group --socket-group (default pagekeeper when that group exists,
 * else root's).  A VM belongs to the uid that registered it; a request
 * that names a VM (RECLAIM, DRAIN, BALLOON, SET) is refused with -EPERM
 * unless its peer (SO_PEERCRED, taken at accept) is that uid, root or a
 * member of --admin-group, and STATUS lists other users' VMs only to
 * those admins.  A balloon channel that is a socket path must belong to
 * the registering uid (the daemon connects to it as root); a libvirt URI
 * is for admins only.  A peer that is neither root nor an admin may
 * not raise its own VM's claim, by REGISTER's settings trailer or by
 * SET: no shares above the default, no min, no balloon opt-out.
 */
#include "engine/engine.h"
#include "engine/protocol.h"
#include "engine/vm.h"
#include "engine/vm_balloon.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

#define PK_MAX_RX_FDS 4
#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77 /* Linux 6.5; glibc's headers may lack it */
#endif
/* Out of fds (EMFILE): the listen fd is not polled for this long. */
#define PK_ACCEPT_PAUSE_MS 250

/* Who is at the other end of a connection (SO_PEERCRED at connect). */
struct pk_peer {
	uid_t uid;
	gid_t gid;
	pid_t pid;
	int admin; /* root, or a member of the admin group */
};

/* An open connection that has not (yet) registered a VM. */
struct pk_conn {
	struct pk_engine *engine;
	int fd;
	struct pk_peer peer;
	struct pk_watch *watch;
	struct pk_conn *prev, *next; /* engine->conns, freed at shutdown */
};

static void conn_close(struct pk_conn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		c->engine->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	pk_watch_del(c->engine->loop, c->watch);
	if (c->fd >= 0)
		close(c->fd);
	free(c);
}

static void send_reply(int fd, uint16_t type, int status, uint32_t vm_id,
		       const char *reason)
{
	struct pk_reply_msg r;

	pk_reply_encode(&r, type, status, vm_id, reason);
	/* MSG_DONTWAIT: a client that never reads must not stall the loop. */
	send(fd, &r, sizeof(r), MSG_NOSIGNAL | MSG_DONTWAIT);
}

/* Is gid one of the peer's groups (primary or SO_PEERGROUPS)? */
static int peer_in_group(int fd, gid_t primary, gid_t gid)
{
	gid_t small[64], *groups = small;
	socklen_t len = sizeof(small);
	int found = primary == gid;

	if (found)
		return 1;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0) {
		if (errno != ERANGE || !(groups = malloc(len)))
			return 0;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0)
			len = 0;
	}
	for (size_t i = 0; i < len / sizeof(gid_t); i++)
		found |= groups[i] == gid;
	if (groups != small)
		free(groups);
	return found;
}

static int peer_get(struct pk_engine *e, int fd, struct pk_peer *p)
{
	struct ucred cred;
	socklen_t cl = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0)
		return -errno;
	p->uid = cred.uid;
	p->gid = cred.gid;
	p->pid = cred.pid;
	p->admin = cred.uid == 0 ||
		   (e->admin_gid >= 0 &&
		    peer_in_group(fd, cred.gid, (gid_t)e->admin_gid));
	return 0;
}

static int peer_may(const struct pk_peer *p, const struct pk_vm *vm)
{
	return p->admin || p->uid == vm->owner_uid;
}

/*
 * The VM a request names, if its peer may act on it; else NULL with err
 * (-ENOENT, -EPERM) and reason.  A VM of the previous daemon still
 * waiting for its guest is not there yet.  A refusal is logged.
 */
static struct pk_vm *vm_for(struct pk_conn *c, const char *vm_name,
			    const char *what, int *err, char *reason,
			    size_t reason_len)
{
	char name[PK_PROTO_NAME_MAX];
	struct pk_vm *vm;

	memcpy(name, vm_name, sizeof(name));
	name[sizeof(name) - 1] = '\0';
	vm = pk_vm_find_by_name(c->engine, name);
	if (!vm) {
		*err = -ENOENT;
		snprintf(reason, reason_len, "no VM named '%s'%s", name,
			 c->engine->n_waiting
				 ? " (VMs of the previous daemon are listed "
				   "once their guests reconnect)"
				 : "");
		return NULL;
	}
	if (!peer_may(&c->peer, vm)) {
		*err = -EPERM;
		snprintf(reason, reason_len,
			 "VM '%s' belongs to uid %u: uid %u may not %s it "
			 "(only its owner, root and the admin group may)",
			 name, (unsigned)vm->owner_uid, (unsigned)c->peer.uid,
			 what);
		pk_log_prio(&c->engine->log, LOG_NOTICE, "refused %s of vm %s to uid %u (pid %d): "
				  "it belongs to uid %u",
		       what, name, (unsigned)c->peer.uid, (int)c->peer.pid,
		       (unsigned)vm->owner_uid);
		return NULL;
	}
	return vm;
}

/* Is the VM named n (live, or waiting if waiting) the peer's? */
static int peer_owns(struct pk_engine *e, const struct pk_peer *p,
		     json_object *n, int waiting)
{
	const char *name = json_object_get_string(n);

	for (struct pk_vm *vm = waiting ? e->waiting : e->vms; name && vm;
	     vm = vm->next)
		if (strcmp(vm->name, name) == 0)
			return vm->owner_uid == p->uid;
	return 0;
}

/* Keep the members of the array at key whose "name" passes keep(). */
static json_object *filter_named(json_object *root, const char *key,
				 int (*keep)(void *arg, json_object *name),
				 void *arg)
{
	json_object *all, *kept = json_object_new_array();

	if (json_object_object_get_ex(root, key, &all))
		for (size_t i = 0; i < json_object_array_length(all); i++) {
			json_object *v = json_object_array_get_idx(all, i), *n;
			if (json_object_object_get_ex(v, "name", &n) &&
			    keep(arg, n))
				json_object_array_add(kept, json_object_get(v));
		}
	json_object_object_add(root, key, kept);
	return kept;
}

struct peer_filter {
	struct pk_engine *e;
	const struct pk_peer *p;
};

static int keep_vm(void *arg, json_object *n)
{
	struct peer_filter *f = arg;
	return peer_owns(f->e, f->p, n, 0);
}

static int keep_waiting(void *arg, json_object *n)
{
	struct peer_filter *f = arg;
	return peer_owns(f->e, f->p, n, 1);
}

/* A sharing domain one of the peer's own VMs is in. */
static int keep_domain(void *arg, json_object *n)
{
	struct peer_filter *f = arg;
	const char *name = json_object_get_string(n);

	for (struct pk_vm *vm = f->e->vms; name && vm; vm = vm->next)
		if (vm->owner_uid == f->p->uid &&
		    strcmp(vm->share_domain, name) == 0)
			return 1;
	return 0;
}

/* The number at key in o, 0 if none. */
static double num_of(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_double(v)
						     : 0;
}

/*
 * Issue 17, 1b: the sharing section names other users' domains and sums
 * their pages.  For a peer that is not an admin, only the domains its
 * own VMs are in, and the totals summed over those (zero_mib over its
 * own VMs).
 */
static void sharing_for_peer(json_object *root, json_object *vms,
			     struct peer_filter *f)
{
	static const char *const sums[] = { "shared_mib", "canonical_frames",
					    "store_mib", "saved_mib" };
	json_object *sh, *doms;
	double zero = 0;

	if (!json_object_object_get_ex(root, "sharing", &sh))
		return;
	doms = filter_named(sh, "domains", keep_domain, f);
	for (size_t k = 0; k < sizeof(sums) / sizeof(sums[0]); k++) {
		double t = 0;
		for (size_t i = 0; i < json_object_array_length(doms); i++)
			t += num_of(json_object_array_get_idx(doms, i), sums[k]);
		json_object_object_add(sh, sums[k],
				       k == 1 ? json_object_new_int64((int64_t)t)
					      : json_object_new_double(t));
	}
	for (size_t i = 0; i < json_object_array_length(vms); i++)
		zero += num_of(json_object_array_get_idx(vms, i), "zero_mib");
	json_object_object_add(sh, "zero_mib", json_object_new_double(zero));
}

/*
 * A status for a peer that is not an admin: only its own VMs, its own
 * VMs of the previous daemon still waiting for their guests, and the
 * sharing domains its VMs are in.
 */
static char *status_for_peer(struct pk_engine *e, const struct pk_peer *p,
			     char *json)
{
	struct peer_filter f = { e, p };
	json_object *root, *mine;
	char *out;

	if (!json || p->admin)
		return json;
	root = json_tokener_parse(json);
	free(json);
	if (!root)
		return NULL;
	mine = filter_named(root, "vms", keep_vm, &f);
	if (json_object_object_get_ex(root, "waiting_vms", NULL))
		filter_named(root, "waiting_vms", keep_waiting, &f);
	sharing_for_peer(root, mine, &f);
	out = strdup(json_object_to_json_string_ext(root,
						    JSON_C_TO_STRING_PLAIN));
	json_object_put(root);
	return out;
}

static void send_status(struct pk_engine *e, int fd, const struct pk_peer *p)
{
	char *json = status_for_peer(e, p, pk_engine_status_json(e));
	size_t len;
	struct pk_msg_header *hdr;

	if (!json) {
		send_reply(fd, PK_MSG_ERROR_REPLY, -ENOMEM, 0,
			   "cannot build status");
		return;
	}
	len = sizeof(*hdr) + strlen(json) + 1;
	hdr = malloc(len);
	if (hdr) {
		pk_msg_header_init(hdr, PK_MSG_STATUS_REPLY, (uint32_t)len);
		memcpy(hdr + 1, json, len - sizeof(*hdr));
		send(fd, hdr, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		free(hdr);
	}
	free(json);
}

static void vm_uffd_ready(struct pk_event_loop *loop, struct pk_watch *w,
			  uint32_t events, void *data)
{
	(void)loop, (void)w, (void)events;
	pk_fault_handle_events(data);
}

static void vm_gone(struct pk_event_loop *loop, struct pk_watch *w,
		    uint32_t events, void *data)
{
	struct pk_vm *vm = data;
	(void)loop, (void)events;

	pk_log(&vm->engine->log, "vm %s (pid %d): %s; freeing its state", vm->name,
	       (int)vm->pid,
	       w == vm->pidfd_watch ? "process exited" : "client detached");
	pk_vm_destroy(vm);
}

/* A registered VM's connection is readable: only EOF is expected. */
static void vm_conn_ready(struct pk_event_loop *loop, struct pk_watch *w,
			  uint32_t events, void *data)
{
	struct pk_vm *vm = data;
	char buf[sizeof(struct pk_msg_header)];

	if (!(events & (EPOLLHUP | EPOLLERR))) {
		ssize_t n = recv(vm->conn_fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n > 0) {
			send_reply(vm->conn_fd, PK_MSG_ERROR_REPLY, -EPROTO, 0,
				   "this connection is bound to a VM; open "
				   "another one for requests");
			return;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
	}
	vm_gone(loop, w, events, data);
}

/*
 * The daemon, as root, connects to a VM's balloon channel: a socket path
 * must be the registering user's own (or anyone's for an admin), and a
 * libvirt URI, which can name any domain, is for admins only.
 */
static int balloon_channel_allowed(struct pk_conn *c,
				   const struct pk_registration *reg,
				   char *reason, size_t reason_len)
{
	struct stat st;

	if (c->peer.admin || reg->balloon_kind == PK_BALLOON_NONE)
		return 0;
	if (reg->balloon_kind == PK_BALLOON_LIBVIRT) {
		snprintf(reason, reason_len,
			 "a libvirt balloon channel needs root or the admin "
			 "group (uid %u is neither)", (unsigned)c->peer.uid);
		return -EPERM;
	}
	/* No symbolic link: the user's own link may point at anyone's
	 * socket.  (The user can still swap the file between this check and
	 * the bridge's connect: the bridge takes a path.) */
	if (lstat(reg->balloon_channel, &st) < 0) {
		snprintf(reason, reason_len, "balloon channel %s: %s",
			 reg->balloon_channel, strerror(errno));
		return -ENOENT;
	}
	if (S_ISLNK(st.st_mode)) {
		snprintf(reason, reason_len,
			 "balloon channel %s is a symbolic link; name the "
			 "socket itself", reg->balloon_channel);
		return -EPERM;
	}
	if (st.st_uid != c->peer.uid) {
		snprintf(reason, reason_len,
			 "balloon channel %s belongs to uid %u, not to uid %u "
			 "who registers it", reg->balloon_channel,
			 (unsigned)st.st_uid, (unsigned)c->peer.uid);
		return -EPERM;
	}
	return 0;
}

/* Does "NAME:UID,..." allow uid into domain name? */
static int domain_allowed(const char *list, const char *name, uid_t uid)
{
	size_t n = strlen(name);

	for (const char *p = list; p && *p;) {
		const char *next = strchr(p, ',');
		char *end;
		if (strncmp(p, name, n) == 0 && p[n] == ':') {
			unsigned long u = strtoul(p + n + 1, &end, 10);
			if ((*end == ',' || *end == '\0') &&
			    u == (unsigned long)uid)
				return 1;
		}
		p = next ? next + 1 : NULL;
	}
	return 0;
}

/*
 * The sharing domain a registration joins.  Merging pages across VMs
 * lets each learn what the others' memory holds (a timing side channel),
 * so a domain is its uid's own: for any uid but root, "NAME" means
 * "u<UID>.NAME", unless --share-domain-allow lets that uid into NAME.
 */
static int share_domain_for(struct pk_conn *c, const char *name, char *out,
			    size_t out_len, char *reason, size_t reason_len)
{
	if (!name[0] || c->peer.uid == 0 ||
	    domain_allowed(c->engine->cfg.share_domain_allow, name,
			   c->peer.uid)) {
		snprintf(out, out_len, "%s", name);
		return 0;
	}
	if ((size_t)snprintf(out, out_len, "u%u.%s", (unsigned)c->peer.uid,
			     name) >= out_len) {
		snprintf(reason, reason_len,
			 "sharing domain '%s' is too long with its uid prefix "
			 "'u%u.' (at most %d bytes)", name,
			 (unsigned)c->peer.uid, PK_PROTO_NAME_MAX - 1);
		return -ENAMETOOLONG;
	}
	return 0;
}

/*
 * A REGISTER's own allocation settings (PK_REG_SETTINGS).  Issue 17: a
 * peer that is not root or an admin may not give its VM more than any
 * other VM gets by default: no shares above the default, no reservation
 * (min), no balloon opt-out (ballooning is how the host takes memory
 * back before it swaps; a VM out of it escapes the cheap reclaim).  A
 * max only limits the VM itself: anyone may set one.
 */
_Static_assert(PK_PROTO_SHARES_DEFAULT == PK_POLICY_DEFAULT_SHARES,
	       "the wire's default shares are the policy's");

static int settings_allowed(struct pk_conn *c, const struct pk_registration *reg,
			    char *reason, size_t reason_len)
{
	const struct pk_register_settings *s = &reg->settings;
	const char *what = NULL;
	char buf[96];

	if (c->peer.admin || !(reg->flags & PK_REG_SETTINGS))
		return 0;
	if (s->shares > PK_PROTO_SHARES_DEFAULT) {
		snprintf(buf, sizeof(buf), "shares %u above the default %u",
			 s->shares, PK_PROTO_SHARES_DEFAULT);
		what = buf;
	} else if (s->min_bytes) {
		what = "a reservation (min)";
	} else if (s->flags & PK_REGSET_NO_BALLOON) {
		what = "a balloon opt-out";
	}
	if (!what)
		return 0;
	snprintf(reason, reason_len, "settings: %s needs root or the admin "
		 "group (uid %u is neither); ask the admin for a [vm %s] "
		 "section", what, (unsigned)c->peer.uid, reg->vm_name);
	pk_log_prio(&c->engine->log, LOG_NOTICE, "refused vm %s's settings to uid %u "
		    "(pid %d): %s", reg->vm_name, (unsigned)c->peer.uid,
		    (int)c->peer.pid, what);
	return -EPERM;
}

static void handle_register(struct pk_conn *c, const void *buf, size_t len,
			    int *fds, int n_fds)
{
	struct pk_engine *e = c->engine;
	struct pk_registration reg;
	struct ucred cred;
	socklen_t cl = sizeof(cred);
	char reason[PK_PROTO_REASON_MAX] = "";
	char domain[PK_PROTO_NAME_MAX];
	struct pk_vm *vm = NULL;
	int err, want_fds;

	err = pk_register_decode(buf, len, &reg, reason, sizeof(reason));
	if (err)
		goto reject;
	err = share_domain_for(c, reg.share_domain, domain, sizeof(domain),
			       reason, sizeof(reason));
	if (err)
		goto reject;
	reg.share_domain = domain;
	want_fds = (reg.flags & PK_REG_ANON) ? 1 : 2;
	if (n_fds != want_fds) {
		err = -EINVAL;
		snprintf(reason, sizeof(reason),
			 "register carries %d fds; expected %d (uffd%s)", n_fds,
			 want_fds, want_fds == 2 ? ", RAM fd" : "");
		goto reject;
	}
	if (getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0) {
		err = -errno;
		snprintf(reason, sizeof(reason), "SO_PEERCRED: %s",
			 strerror(errno));
		goto reject;
	}
	err = balloon_channel_allowed(c, &reg, reason, sizeof(reason));
	if (err)
		goto reject;
	err = settings_allowed(c, &reg, reason, sizeof(reason));
	if (err)
		goto reject;
	reg.owner_uid = c->peer.uid;
	reg.owner_admin = c->peer.admin;
	err = pk_vm_create(e, &reg, cred.pid, fds[0], n_fds > 1 ? fds[1] : -1,
			   c->fd, &vm, reason, sizeof(reason));
	if (err)
		goto reject;
	vm->owner_uid = c->peer.uid;
	/* The process that connected, not whoever has its pid by now: with
	 * SO_PEERPIDFD (Linux 6.5) the VM's lifetime follows that process's
	 * own pidfd, so a peer that exited during the checks (its pid free
	 * for another) is let go at once (vm_gone). */
	int peer_pidfd = -1;
	socklen_t pl = sizeof(peer_pidfd);
	if (getsockopt(c->fd, SOL_SOCKET, SO_PEERPIDFD, &peer_pidfd, &pl) == 0 &&
	    peer_pidfd >= 0) {
		if (vm->pidfd >= 0)
			close(vm->pidfd);
		vm->pidfd = peer_pidfd;
	}

	/* The VM owns the fds and the connection now. */
	c->fd = -1;
	conn_close(c);
	fcntl(vm->uffd, F_SETFL, fcntl(vm->uffd, F_GETFL) | O_NONBLOCK);
	vm->uffd_watch = pk_watch_add(e->loop, vm->uffd, EPOLLIN,
				      vm_uffd_ready, vm);
	vm->pidfd_watch = pk_watch_add(e->loop, vm->pidfd, EPOLLIN, vm_gone, vm);
	vm->conn_watch = pk_watch_add(e->loop, vm->conn_fd, EPOLLIN | EPOLLRDHUP,
				      vm_conn_ready, vm);
	if (!vm->uffd_watch || !vm->pidfd_watch || !vm->conn_watch) {
		send_reply(vm->conn_fd, PK_MSG_REGISTER_REPLY, -ENOMEM, 0,
			   "cannot watch the VM's fds");
		pk_vm_destroy(vm);
		return;
	}
	pk_log(&e->log, "vm %s registered: id %u, pid %d, %llu MiB in %u region(s), %s RAM",
	       vm->name, vm->id, (int)vm->pid,
	       (unsigned long long)(vm->configured_bytes >> 20), vm->n_regions,
	       vm->anon ? "anonymous" : "shared");
	send_reply(vm->conn_fd, PK_MSG_REGISTER_REPLY, 0, vm->id, "ok");
	return;
reject:
	for (int i = 0; i < n_fds; i++)
		close(fds[i]);
	pk_log(&e->log, "rejected registration: %s", reason);
	send_reply(c->fd, PK_MSG_REGISTER_REPLY, err, 0, reason);
}

/*
 * The VM a RECLAIM or DRAIN names, or NULL after an ERROR_REPLY.  A VM of
 * the previous daemon still waiting for its guest is not there yet.
 */
static struct pk_vm *request_vm(struct pk_conn *c, const char *vm_name,
				const char *what)
{
	char reason[PK_PROTO_REASON_MAX];
	int err;
	struct pk_vm *vm = vm_for(c, vm_name, what, &err, reason,
				  sizeof(reason));

	if (!vm)
		send_reply(c->fd, PK_MSG_ERROR_REPLY, err, 0, reason);
	return vm;
}

typedef int long_request_fn(struct pk_vm *vm, uint64_t arg, int reply_fd,
			    char *reason, size_t reason_len);

/*
 * A request whose reply comes when its work ends: a copy of the
 * connection is handed to the work, which answers on it.
 */
static void start_long_request(struct pk_conn *c, struct pk_vm *vm,
			       long_request_fn *start, uint64_t arg)
{
	char reason[PK_PROTO_REASON_MAX];
	int err, fd = dup(c->fd);

	if (fd < 0) {
		send_reply(c->fd, PK_MSG_ERROR_REPLY, -errno, 0, "dup failed");
		return;
	}
	err = start(vm, arg, fd, reason, sizeof(reason));
	if (err) {
		close(fd);
		send_reply(c->fd, PK_MSG_ERROR_REPLY, err, 0, reason);
	}
}

static int drain_start(struct pk_vm *vm, uint64_t unused, int reply_fd,
		       char *reason, size_t reason_len)
{
	(void)unused;
	return pk_fault_drain_start(vm, reply_fd, reason, reason_len);
}

/* RECLAIM: evict.c answers when the eviction ends. */
static void handle_reclaim(struct pk_conn *c, const struct pk_reclaim_msg *m)
{
	struct pk_vm *vm = request_vm(c, m->vm_name, "reclaim");
	char reason[PK_PROTO_REASON_MAX];

	if (!vm)
		return;
	if (m->bytes == 0 || m->bytes % PK_PAGE_SIZE) {
		snprintf(reason, sizeof(reason),
			 "reclaim size must be a positive multiple of %u bytes",
			 PK_PAGE_SIZE);
		send_reply(c->fd, PK_MSG_ERROR_REPLY, -EINVAL, 0, reason);
		return;
	}
	start_long_request(c, vm, pk_reclaim_start, m->bytes / PK_PAGE_SIZE);
}

/* DRAIN: fault.c answers when every page is back. */
static void handle_drain(struct pk_conn *c, const struct pk_drain_msg *m)
{
	struct pk_vm *vm = request_vm(c, m->vm_name, "drain");

	if (vm)
		start_long_request(c, vm, drain_start, 0);
}

/*
 * BALLOON: set the target through the VM's bridge and answer at once with
 * a BALLOON_REPLY, refusals included; the guest moves later (status).  A
 * migrating VM is -EBUSY (the bridge says so).
 */
static void handle_balloon(struct pk_conn *c, const struct pk_balloon_msg *m)
{
	struct pk_balloon_reply r;
	struct pk_vm *vm;
	uint64_t actual = 0;
	int err;

	memset(&r, 0, sizeof(r));
	pk_msg_header_init(&r.hdr, PK_MSG_BALLOON_REPLY, sizeof(r));
	vm = vm_for(c, m->vm_name, "balloon", &err, r.reason, sizeof(r.reason));
	if (vm) {
		err = pk_vm_balloon_set_target(vm, m->target_bytes, &actual,
					       r.reason, sizeof(r.reason));
		if (!err) {
			snprintf(r.reason, sizeof(r.reason), "ok");
			/* An admin's target: the policy gives the balloon
			 * up until memory runs short again (policy.c). */
			vm->policy.balloon_goal = 0;
			vm->policy.balloon_sent = m->target_bytes;
		}
	}
	r.status = err;
	r.target_bytes = err ? 0 : m->target_bytes;
	r.actual_bytes = actual;
	if (err && err != -EPERM) /* vm_for logged a refusal */
		pk_log_prio(&c->engine->log, LOG_NOTICE, "balloon request refused: %s", r.reason);
	send(c->fd, &r, sizeof(r), MSG_NOSIGNAL | MSG_DONTWAIT);
}

/* SET: a VM's shares, min and max for the policy; answered at once. */
static void handle_set(struct pk_conn *c, const struct pk_set_msg *m)
{
	struct pk_reply_msg r;
	char why[PK_PROTO_REASON_MAX] = "ok";
	struct pk_vm *vm;
	int err = 0;

	vm = vm_for(c, m->vm_name, "set", &err, why, sizeof(why));
	if (!vm) {
		;
	} else if (m->shares < -1 || m->min_bytes < -1 || m->max_bytes < -1 ||
		   m->no_balloon < -1 || m->no_balloon > 1) {
		err = -EINVAL;
		snprintf(why, sizeof(why), "a figure is out of range");
	} else if (!c->peer.admin &&
		   (m->shares > PK_PROTO_SHARES_DEFAULT || m->min_bytes > 0 ||
		    m->no_balloon == 1)) {
		/* The owner may lower its VM's claim, never raise it above
		 * what every VM gets by default: the REGISTER rule
		 * (settings_allowed), which SET must not get around. */
		err = -EPERM;
		snprintf(why, sizeof(why), "settings: %s needs root or the "
			 "admin group (uid %u is neither)",
			 m->shares > PK_PROTO_SHARES_DEFAULT
				 ? "shares above the default 1000"
				 : m->min_bytes > 0 ? "a reservation (min)"
						    : "a balloon opt-out",
			 (unsigned)c->peer.uid);
	} else {
		err = pk_policy_vm_set_run(vm, m->shares, m->min_bytes,
					   m->max_bytes, m->no_balloon, why,
					   sizeof(why));
	}
	if (err && (err != -EPERM || vm)) /* vm_for logged its refusal */
		pk_log_prio(&c->engine->log, LOG_NOTICE, "set request refused: %s", why);
	pk_reply_encode(&r, PK_MSG_SET_REPLY, err, vm ? vm->id : 0, why);
	send(c->fd, &r, sizeof(r), MSG_NOSIGNAL | MSG_DONTWAIT);
}

static void close_fd(int fd)
{
	close(fd);
}

static void conn_ready(struct pk_event_loop *loop, struct pk_watch *w,
		       uint32_t events, void *data)
{
	struct pk_conn *c = data;
	char *buf = c->engine->rx_buf;
	char cbuf[CMSG_SPACE(sizeof(int) * PK_MAX_RX_FDS)];
	/* One byte more than the limit so oversize shows as MSG_TRUNC. */
	struct iovec iov = { .iov_base = buf, .iov_len = PK_PROTO_MAX_MSG + 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf) };
	char reason[PK_PROTO_REASON_MAX];
	int fds[PK_MAX_RX_FDS], n_fds = 0;
	uint16_t type;
	ssize_t n;
	int err;
	(void)loop, (void)w;

	n = recvmsg(c->fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n < 0) {
		/* No message came (ECONNRESET: the peer closed with our
		 * reply unread): msg_control was not filled in, and the
		 * buffer may hold an earlier message's fd numbers, now
		 * other owners' fds.  Nothing arrived, nothing to close. */
		conn_close(c);
		return;
	}
	n_fds = pk_proto_cmsg_fds(&mh, fds, PK_MAX_RX_FDS, close_fd);
	/* SEQPACKET: 0 bytes is an empty message unless the peer hung up. */
	if (n == 0 && !(events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))) {
		err = pk_msg_check_header(buf, 0, &type, reason, sizeof(reason));
		goto reject;
	}
	if (n <= 0 || (events & (EPOLLHUP | EPOLLERR))) {
		for (int i = 0; i < n_fds; i++)
			close(fds[i]);
		conn_close(c);
		return;
	}
	if (mh.msg_flags & MSG_CTRUNC) {
		err = -EMSGSIZE;
		snprintf(reason, sizeof(reason), "too many fds attached");
		goto reject;
	}
	if (mh.msg_flags & MSG_TRUNC)
		n = PK_PROTO_MAX_MSG + 1; /* report as oversized */
	err = pk_msg_check_header(buf, (size_t)n, &type, reason, sizeof(reason));
	if (err)
		goto reject;
	switch (type) {
	case PK_MSG_REGISTER:
		handle_register(c, buf, (size_t)n, fds, n_fds);
		return;
	case PK_MSG_RECLAIM:
		if (n_fds || (size_t)n != sizeof(struct pk_reclaim_msg)) {
			err = -EBADMSG;
			snprintf(reason, sizeof(reason),
				 "reclaim request must be %zu bytes without fds",
				 sizeof(struct pk_reclaim_msg));
			goto reject;
		}
		handle_reclaim(c, (const struct pk_reclaim_msg *)(const void *)buf);
		return;
	case PK_MSG_DRAIN:
		if (n_fds || (size_t)n != sizeof(struct pk_drain_msg)) {
			err = -EBADMSG;
			snprintf(reason, sizeof(reason),
				 "drain request must be %zu bytes without fds",
				 sizeof(struct pk_drain_msg));
			goto reject;
		}
		handle_drain(c, (const struct pk_drain_msg *)(const void *)buf);
		return;
	case PK_MSG_BALLOON:
		if (n_fds || (size_t)n != sizeof(struct pk_balloon_msg)) {
			err = -EBADMSG;
			snprintf(reason, sizeof(reason),
				 "balloon request must be %zu bytes without fds",
				 sizeof(struct pk_balloon_msg));
			goto reject;
		}
		handle_balloon(c, (const struct pk_balloon_msg *)(const void *)buf);
		return;
	case PK_MSG_SET:
		if (n_fds || (size_t)n != sizeof(struct pk_set_msg)) {
			err = -EBADMSG;
			snprintf(reason, sizeof(reason),
				 "set request must be %zu bytes without fds",
				 sizeof(struct pk_set_msg));
			goto reject;
		}
		handle_set(c, (const struct pk_set_msg *)(const void *)buf);
		return;
	case PK_MSG_STATUS:
		if (n_fds) {
			err = -EINVAL;
			snprintf(reason, sizeof(reason),
				 "status request must not carry fds");
			goto reject;
		}
		send_status(c->engine, c->fd, &c->peer);
		return;
	default:
		err = -EOPNOTSUPP;
		snprintf(reason, sizeof(reason), "unknown message type %u", type);
		goto reject;
	}
reject:
	for (int i = 0; i < n_fds; i++)
		close(fds[i]);
	pk_log(&c->engine->log, "rejected request: %s", reason);
	send_reply(c->fd, PK_MSG_ERROR_REPLY, err, 0, reason);
}

static void listen_ready(struct pk_event_loop *loop, struct pk_watch *w,
			 uint32_t events, void *data);

/*
 * accept() found no fd to take the connection (EMFILE, ENFILE) or no
 * memory: the connection stays queued and the listen fd readable, and a
 * level-triggered loop would spin on it.  Stop polling it for
 * PK_ACCEPT_PAUSE_MS (faults and everything else go on); one log line
 * per episode.
 */
static void accept_pause(struct pk_engine *e, int err)
{
	struct itimerspec at = {
		.it_value = { 0, PK_ACCEPT_PAUSE_MS * 1000000L },
	};

	if (!e->accept_pauses++)
		pk_log_prio(&e->log, LOG_WARNING, "accept: %s; new connections wait (retried every "
			  "%d ms) until some close",
		       strerror(err), PK_ACCEPT_PAUSE_MS);
	pk_watch_del(e->loop, e->listen_watch);
	e->listen_watch = NULL;
	timerfd_settime(e->accept_pause_fd, 0, &at, NULL);
}

static void accept_resume(struct pk_event_loop *loop, struct pk_watch *w,
			  uint32_t events, void *data)
{
	struct pk_engine *e = data;
	uint64_t expirations;
	(void)w, (void)events;

	if (read(e->accept_pause_fd, &expirations, sizeof(expirations)) < 0 ||
	    e->listen_watch)
		return;
	e->listen_watch = pk_watch_add(loop, e->listen_fd, EPOLLIN,
				       listen_ready, e);
	if (!e->listen_watch)
		accept_pause(e, errno);
}

static void listen_ready(struct pk_event_loop *loop, struct pk_watch *w,
			 uint32_t events, void *data)
{
	struct pk_engine *e = data;
	(void)w, (void)events;

	for (;;) {
		int fd = accept4(e->listen_fd, NULL, NULL,
				 SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM)
				accept_pause(e, errno);
			return;
		}
		if (e->accept_pauses) {
			pk_log(&e->log, "accepting connections again (paused %llu "
				  "time(s) for lack of fds)",
			       (unsigned long long)e->accept_pauses);
			e->accept_pauses = 0;
		}
		struct pk_conn *c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		c->engine = e;
		c->fd = fd;
		if (peer_get(e, fd, &c->peer) < 0) {
			close(fd);
			free(c);
			continue;
		}
		c->next = e->conns;
		if (c->next)
			c->next->prev = c;
		e->conns = c;
		c->watch = pk_watch_add(loop, fd, EPOLLIN | EPOLLRDHUP,
					conn_ready, c);
		if (!c->watch)
			conn_close(c);
	}
}

/* A group's gid by name: 0, or -ENOENT with a log line. */
static int group_gid(struct pk_engine *e, const char *name, const char *what,
		     gid_t *gid)
{
	struct group *g = getgrnam(name);

	if (!g) {
		pk_log(&e->log, "%s '%s': no such group", what, name);
		return -ENOENT;
	}
	*gid = g->gr_gid;
	return 0;
}

/*
 * Mode 0660, group cfg.socket_group (default pagekeeper when that group
 * exists, else root's), and the admin group's gid.
 */
static int socket_access(struct pk_engine *e, const char *path)
{
	const char *name = e->cfg.socket_group;
	gid_t gid = 0;
	int err;

	e->admin_gid = -1;
	if (e->cfg.admin_group) {
		if ((err = group_gid(e, e->cfg.admin_group, "--admin-group",
				     &gid)) != 0)
			return err;
		e->admin_gid = (long)gid;
	}
	gid = 0;
	if (name) {
		if ((err = group_gid(e, name, "--socket-group", &gid)) != 0)
			return err;
	} else if (getgrnam("pagekeeper")) {
		name = "pagekeeper";
		gid = getgrnam(name)->gr_gid;
	} else {
		struct group *root = getgrgid(0);
		name = root ? root->gr_name : "0";
	}
	if (chown(path, (uid_t)-1, gid) < 0 || chmod(path, 0660) < 0)
		return -errno;
	pk_log(&e->log, "control socket %s: mode 0660, group %s (gid %u); admins: "
		  "root%s%s",
	       path, name, (unsigned)gid, e->cfg.admin_group ? " and group " : "",
	       e->cfg.admin_group ? e->cfg.admin_group : "");
	return 0;
}

/*
 * Every client costs the daemon fds (its connection; a VM's uffd, RAM
 * fd, pidfd): take the hard limit of open files, not the soft one
 * (often 1024).
 */
static void raise_fd_limit(struct pk_engine *e)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= rl.rlim_max)
		return;
	rlim_t was = rl.rlim_cur;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
		pk_log(&e->log, "open files limit raised from %llu to %llu fds",
		       (unsigned long long)was, (unsigned long long)rl.rlim_max);
}

/*
 * Bind the socket.  A socket file left by a dead daemon is replaced; one
 * a live daemon answers on is not (two daemons must not split guests).
 */
int pk_control_listen(struct pk_engine *e)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(e->cfg.socket_path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, e->cfg.socket_path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (errno != EADDRINUSE)
			goto fail;
		int probe = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
		int live = probe >= 0 &&
			   connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0;
		if (probe >= 0)
			close(probe);
		if (live) {
			close(fd);
			return -EADDRINUSE;
		}
		unlink(sa.sun_path);
		if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
			goto fail;
	}
	/* Guests may run as other users (QEMU): they are let in by the
	 * socket's group; each request is then checked (vm_for).  Before
	 * listen(): nobody connects until the mode is right. */
	if ((errno = -socket_access(e, sa.sun_path)) != 0)
		goto fail;
	if (listen(fd, 64) < 0)
		goto fail;
	raise_fd_limit(e);
	e->accept_pause_fd = timerfd_create(CLOCK_MONOTONIC,
					    TFD_CLOEXEC | TFD_NONBLOCK);
	if (e->accept_pause_fd < 0 ||
	    !pk_watch_add(e->loop, e->accept_pause_fd, EPOLLIN, accept_resume,
			  e))
		goto fail;
	e->listen_fd = fd;
	e->listen_watch = pk_watch_add(e->loop, fd, EPOLLIN, listen_ready, e);
	if (!e->listen_watch) {
		e->listen_fd = -1;
		goto fail;
	}
	return 0;
fail:;
	int err = -errno;
	close(fd);
	return err;
}

void pk_control_close(struct pk_engine *e)
{
	while (e->conns)
		conn_close(e->conns);
	if (e->accept_pause_fd >= 0) {
		close(e->accept_pause_fd);
		e->accept_pause_fd = -1;
	}
	if (e->listen_fd >= 0) {
		close(e->listen_fd);
		unlink(e->cfg.socket_path);
		e->listen_fd = -1;
	}
}
