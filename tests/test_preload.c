/*
 * test_preload.c - libpagekeeper-preload.so: QEMU's command line as the
 * shim reads it, and a real QEMU attached to a real pagekeeperd.
 *
 * Suite "cmdline" (fast, no processes): realistic QEMU and libvirt argv
 * vectors through pk_qc_parse(): -name forms, QMP given by -qmp or by
 * -chardev + -mon (and libvirt's fd-passed monitor, which must give no
 * path), -incoming, memory backends in key=value and JSON form and which
 * of them are guest RAM, devices that rule management out, missing and
 * over-long values; then backend matching, VM naming and refusals.
 *
 * Suite "qemu" (slow: meson suite 'qemu'): each test starts a private
 * pagekeeperd (daemon_fixture.c) and qemu-system-x86_64 under TCG with
 * LD_PRELOAD=libpagekeeper-preload.so, 256 MiB memfd RAM and no kernel:
 * SeaBIOS touches RAM, finds nothing to boot and keeps running.  A
 * 32 MiB random blob loaded into guest RAM (-device loader) is read back
 * with QMP pmemsave wherever data must survive (eviction, migration,
 * and a late attach: loaded while no daemon ran, evicted after one came).
 * The checked teardown judges the daemons (pk_test_daemon_stop_ok: exit
 * 0 on SIGTERM, no sanitizer report).  Deadlines derive from the work
 * (QEMU's start, the shim's retry period, MiB at a floor rate) times
 * pk_test_time_scale().
 * QEMU's stderr goes to a file in the daemon fixture's directory, which
 * the fixture removes; QEMU gets PDEATHSIG and is killed by pid in the
 * teardown.  Under ASan the sanitizer runtimes are preloaded before the
 * shim (QEMU is not instrumented) and leak checking is off for QEMU.
 */
#include "engine/preload/backend.h"
#include "engine/preload/cmdline.h"
#include "engine/preload/preload.h" /* PK_RETRY_MS */
#include "engine/protocol.h"
#include "tests/daemon_fixture.h"
#include "tests/guest_proc.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <link.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define ARGC(a) ((int)(sizeof(a) / sizeof((a)[0])))

static struct pk_qemu_cmdline C;

static void parse(int argc, char *const argv[])
{
	ck_assert_int_eq(pk_qc_parse(argc, argv, &C), 0);
}

/* ---- suite cmdline: -name ---------------------------------------------- */

START_TEST(name_forms)
{
	char *a[] = { "qemu", "-name", "guest=vm1,debug-threads=on" };
	char *b[] = { "qemu", "-name", "vm2,process=qemu:vm2" };
	char *c[] = { "qemu", "--name", "guest=a,,b" };
	char *d[] = { "qemu", "-name", "debug-threads=on,guest=late" };
	char *e[] = { "qemu", "-name", "first", "-name", "second" };

	parse(ARGC(a), a);
	ck_assert_str_eq(C.name, "vm1");
	parse(ARGC(b), b);
	ck_assert_str_eq(C.name, "vm2");
	parse(ARGC(c), c);
	ck_assert_str_eq(C.name, "a,b"); /* ",," is a literal comma */
	parse(ARGC(d), d);
	ck_assert_str_eq(C.name, "late");
	parse(ARGC(e), e);
	ck_assert_str_eq(C.name, "second"); /* as QEMU: the last wins */
	ck_assert_str_eq(C.problem, "");
}
END_TEST

START_TEST(name_missing_or_long)
{
	char *a[] = { "qemu", "-m", "256", "-name" };
	char *b[] = { "qemu", "-name", "debug-threads=on" };
	char longname[300];
	char *c[] = { "qemu", "-name", longname };

	parse(ARGC(a), a);
	ck_assert_str_eq(C.name, "");
	ck_assert_str_eq(C.problem, "-name needs a value");
	parse(ARGC(b), b);
	ck_assert_str_eq(C.name, ""); /* no guest= at all: not a problem */
	ck_assert_str_eq(C.problem, "");
	memset(longname, 'x', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	parse(ARGC(c), c);
	ck_assert_str_eq(C.name, "");
	ck_assert_ptr_nonnull(strstr(C.problem, "too long"));
}
END_TEST

/* ---- suite cmdline: QMP ------------------------------------------------ */

START_TEST(qmp_direct)
{
	char *a[] = { "qemu", "-qmp", "unix:/run/q.sock,server=on,wait=off" };
	char *b[] = { "qemu", "-qmp", "unix:/run/old.sock,server,nowait" };
	char *c[] = { "qemu", "-qmp-pretty", "unix:/tmp/a,,b.sock,server=on" };
	char *d[] = { "qemu", "-qmp", "tcp:localhost:4444,server=on",
		      "-qmp", "unix:/run/second.sock,server=on" };
	char *e[] = { "qemu", "-qmp" };

	parse(ARGC(a), a);
	ck_assert_str_eq(C.qmp_path, "/run/q.sock");
	ck_assert_int_eq(C.qmp_fd_passed, 0);
	parse(ARGC(b), b);
	ck_assert_str_eq(C.qmp_path, "/run/old.sock");
	parse(ARGC(c), c);
	ck_assert_str_eq(C.qmp_path, "/tmp/a,b.sock");
	parse(ARGC(d), d); /* a TCP monitor has no path: take the next */
	ck_assert_str_eq(C.qmp_path, "/run/second.sock");
	parse(ARGC(e), e);
	ck_assert_str_eq(C.qmp_path, "");
	ck_assert_str_eq(C.problem, "-qmp needs a value");
}
END_TEST

START_TEST(qmp_chardev_mon)
{
	/* -mon before its -chardev, and an HMP monitor first. */
	char *a[] = { "qemu", "-mon", "chardev=hmp0",
		      "-mon", "chardev=mon0,mode=control,pretty=on",
		      "-chardev", "socket,id=hmp0,path=/run/hmp.sock,server=on",
		      "-chardev", "socket,path=/run/qmp.sock,id=mon0,server=on,wait=off" };
	/* -mon's implied key is chardev; an unknown chardev gives nothing. */
	char *b[] = { "qemu", "-chardev", "socket,id=m,path=/run/m.sock,server=on",
		      "-mon", "m,mode=control" };
	char *c[] = { "qemu", "-mon", "chardev=nope,mode=control" };
	char *d[] = { "qemu", "-chardev", "stdio,id=s", "-mon", "s,mode=control",
		      "-qmp", "unix:/run/after.sock,server=on" };

	parse(ARGC(a), a);
	ck_assert_str_eq(C.qmp_path, "/run/qmp.sock");
	parse(ARGC(b), b);
	ck_assert_str_eq(C.qmp_path, "/run/m.sock");
	parse(ARGC(c), c);
	ck_assert_str_eq(C.qmp_path, "");
	parse(ARGC(d), d);
	ck_assert_str_eq(C.qmp_path, "/run/after.sock");
}
END_TEST

START_TEST(qmp_libvirt_fd)
{
	/* libvirt 9 opens the monitor socket itself and passes the fd. */
	char *a[] = { "qemu", "-chardev", "socket,id=charmonitor,fd=31,server=on,wait=off",
		      "-mon", "chardev=charmonitor,id=monitor,mode=control" };

	parse(ARGC(a), a);
	ck_assert_str_eq(C.qmp_path, "");
	ck_assert_int_eq(C.qmp_fd_passed, 1);
}
END_TEST

/* ---- suite cmdline: -incoming, no guest ---------------------------------- */

START_TEST(incoming_forms)
{
	char *a[] = { "qemu", "-incoming", "tcp:0:4444" };
	char *b[] = { "qemu", "-incoming", "defer" };
	char *c[] = { "qemu", "-m", "1G" };
	char *d[] = { "qemu", "-incoming" };

	parse(ARGC(a), a);
	ck_assert_int_eq(C.incoming, 1);
	parse(ARGC(b), b);
	ck_assert_int_eq(C.incoming, 1);
	parse(ARGC(c), c);
	ck_assert_int_eq(C.incoming, 0);
	parse(ARGC(d), d); /* QEMU will refuse it; the shim stays safe */
	ck_assert_int_eq(C.incoming, 1);
	ck_assert_str_eq(C.problem, "-incoming needs a value");
}
END_TEST

START_TEST(no_guest)
{
	char *a[] = { "qemu", "-version" };
	char *b[] = { "qemu", "-machine", "none,accel=kvm:tcg", "-qmp", "stdio" };
	char *c[] = { "qemu", "-M", "q35", "-m", "256" };

	parse(ARGC(a), a);
	ck_assert_int_eq(C.no_guest, 1);
	parse(ARGC(b), b);
	ck_assert_int_eq(C.no_guest, 1);
	parse(ARGC(c), c);
	ck_assert_int_eq(C.no_guest, 0);
}
END_TEST

/* ---- suite cmdline: memory backends -------------------------------------- */

START_TEST(backends_keyvalue)
{
	char *a[] = { "qemu", "-m", "768",
		      "-object", "memory-backend-memfd,id=ram,size=512M",
		      "-machine", "pc,memory-backend=ram",
		      "-object", "memory-backend-file,id=dimm,size=256M,mem-path=/dev/shm,share=on,prealloc=on",
		      "-device", "pc-dimm,id=d0,memdev=dimm",
		      "-object", "memory-backend-file,id=iv,size=4M,share=on,mem-path=/dev/shm/iv",
		      "-device", "ivshmem-plain,memdev=iv",
		      "-object", "memory-backend-memfd,id=priv,size=1M,share=off",
		      "-object", "qom-type=memory-backend-ram,id=anon,size=1M",
		      "-object", "iothread,id=io0" };

	parse(ARGC(a), a);
	ck_assert_uint_eq(C.n_backends, 5);
	ck_assert_str_eq(C.backends[0].id, "ram");
	ck_assert_int_eq(C.backends[0].type, PK_QC_BE_MEMFD);
	ck_assert_int_eq(C.backends[0].share, 1); /* memfd's default */
	ck_assert_int_eq(C.backends[0].ram, 1);
	ck_assert_int_eq(C.backends[1].type, PK_QC_BE_FILE);
	ck_assert_str_eq(C.backends[1].mem_path, "/dev/shm");
	ck_assert_int_eq(C.backends[1].share, 1);
	ck_assert_int_eq(C.backends[1].prealloc, 1);
	ck_assert_int_eq(C.backends[1].ram, 1); /* pc-dimm */
	ck_assert_int_eq(C.backends[2].ram, 0); /* ivshmem: not guest RAM */
	ck_assert_int_eq(C.backends[3].share, 0);
	ck_assert_int_eq(C.backends[4].type, PK_QC_BE_OTHER);
	ck_assert_uint_eq(pk_qc_managed_count(&C), 2);
	ck_assert_str_eq(C.conflict, "");
}
END_TEST

START_TEST(backends_numa_prealloc)
{
	char *a[] = { "qemu", "-mem-prealloc",
		      "-numa", "node,nodeid=0,cpus=0,memdev=n0",
		      "-numa", "node,nodeid=1,cpus=1,memdev=n1",
		      "-object", "memory-backend-memfd,id=n0,size=1G",
		      "-object", "memory-backend-memfd,id=n1,size=1G",
		      "-object", "memory-backend-file,id=f,size=1G,mem-path=/dev/shm/f" };

	parse(ARGC(a), a);
	ck_assert_uint_eq(C.n_backends, 3);
	ck_assert_int_eq(C.backends[0].ram, 1);
	ck_assert_int_eq(C.backends[1].ram, 1);
	ck_assert_int_eq(C.backends[2].ram, 0); /* referenced by nothing */
	ck_assert_int_eq(C.backends[2].share, 0); /* file's default */
	for (unsigned i = 0; i < 3; i++)
		ck_assert_int_eq(C.backends[i].prealloc, 1);
	ck_assert_uint_eq(pk_qc_managed_count(&C), 2);
}
END_TEST

/* What libvirt 9.0 writes for a memfd-backed domain (abridged). */
START_TEST(libvirt_argv)
{
	char *a[] = {
		"/usr/bin/qemu-system-x86_64",
		"-name", "guest=web-1,debug-threads=on",
		"-S",
		"-object", "{\"qom-type\":\"secret\",\"id\":\"masterKey0\",\"format\":\"raw\",\"file\":\"/var/lib/libvirt/qemu/domain-1-web-1/master-key.aes\"}",
		"-machine", "pc-q35-7.2,usb=off,dump-guest-core=off,memory-backend=pc.ram",
		"-accel", "kvm",
		"-cpu", "host,migratable=on",
		"-m", "4096",
		"-object", "{\"qom-type\":\"memory-backend-memfd\",\"id\":\"pc.ram\",\"share\":true,\"x-use-canonical-path-for-ramblock-id\":false,\"size\":4294967296,\"host-nodes\":[0],\"policy\":\"bind\"}",
		"-overcommit", "mem-lock=off",
		"-smp", "2,sockets=2,cores=1,threads=1",
		"-uuid", "9d4d7f5a-0000-4000-8000-000000000001",
		"-no-user-config", "-nodefaults",
		"-chardev", "socket,id=charmonitor,fd=32,server=on,wait=off",
		"-mon", "chardev=charmonitor,id=monitor,mode=control",
		"-rtc", "base=utc",
		"-device", "{\"driver\":\"virtio-balloon-pci\",\"id\":\"balloon0\",\"bus\":\"pci.5\",\"addr\":\"0x0\"}",
		"-netdev", "{\"type\":\"tap\",\"fd\":\"35\",\"id\":\"hostnet0\"}",
		"-device", "{\"driver\":\"virtio-net-pci\",\"netdev\":\"hostnet0\",\"id\":\"net0\",\"mac\":\"52:54:00:00:00:01\"}",
		"-incoming", "defer",
		"-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
		"-msg", "timestamp=on",
	};

	parse(ARGC(a), a);
	ck_assert_str_eq(C.name, "web-1");
	ck_assert_str_eq(C.qmp_path, "");
	ck_assert_int_eq(C.qmp_fd_passed, 1);
	ck_assert_int_eq(C.incoming, 1);
	ck_assert_uint_eq(C.n_backends, 1);
	ck_assert_str_eq(C.backends[0].id, "pc.ram");
	ck_assert_int_eq(C.backends[0].type, PK_QC_BE_MEMFD);
	ck_assert_int_eq(C.backends[0].share, 1);
	ck_assert_int_eq(C.backends[0].ram, 1);
	ck_assert_str_eq(C.conflict, "");
	ck_assert_str_eq(C.problem, "");
}
END_TEST

START_TEST(conflicts)
{
	char *a[] = { "qemu", "-netdev", "vhost-user,id=n0,chardev=c0" };
	char *b[] = { "qemu", "-device", "vfio-pci,host=0000:01:00.0" };
	char *c[] = { "qemu", "-device", "{\"driver\":\"vhost-user-fs-pci\",\"chardev\":\"c\",\"tag\":\"fs\"}" };
	char *d[] = { "qemu", "-netdev", "vhost-vdpa,id=v0,vhostdev=/dev/vhost-vdpa-0" };
	char *e[] = { "qemu", "-netdev", "tap,id=n0,vhost=on" }; /* in-kernel vhost: fine */

	parse(ARGC(a), a);
	ck_assert_str_eq(C.conflict, "vhost-user");
	parse(ARGC(b), b);
	ck_assert_str_eq(C.conflict, "vfio-pci");
	parse(ARGC(c), c);
	ck_assert_str_eq(C.conflict, "vhost-user-fs-pci");
	parse(ARGC(d), d);
	ck_assert_str_eq(C.conflict, "vhost-vdpa");
	parse(ARGC(e), e);
	ck_assert_str_eq(C.conflict, "");
}
END_TEST

START_TEST(too_many_backends)
{
	char ids[PK_QC_MAX_BACKENDS + 2][64];
	char *a[1 + 2 * (PK_QC_MAX_BACKENDS + 2)];
	int n = 0;

	a[n++] = "qemu";
	for (int i = 0; i < PK_QC_MAX_BACKENDS + 2; i++) {
		snprintf(ids[i], sizeof(ids[i]),
			 "memory-backend-memfd,id=m%d,size=1M", i);
		a[n++] = "-object";
		a[n++] = ids[i];
	}
	ck_assert_int_eq(pk_qc_parse(n, a, &C), -E2BIG);
	ck_assert_uint_eq(C.n_backends, PK_QC_MAX_BACKENDS);
}
END_TEST

/* ---- suite cmdline: the value readers ------------------------------------ */

START_TEST(opt_reader)
{
	char v[16];

	ck_assert_int_eq(pk_qc_opt("pc,memory-backend=ram", "type", "type", v,
				   sizeof(v)), 1);
	ck_assert_str_eq(v, "pc");
	ck_assert_int_eq(pk_qc_opt("a=1,b=2,a=3", NULL, "a", v, sizeof(v)), 1);
	ck_assert_str_eq(v, "3");
	ck_assert_int_eq(pk_qc_opt("server,nowait", "path", "wait", v,
				   sizeof(v)), 1);
	ck_assert_str_eq(v, "off");
	ck_assert_int_eq(pk_qc_opt("x,server", "path", "server", v, sizeof(v)),
			 1);
	ck_assert_str_eq(v, "on");
	ck_assert_int_eq(pk_qc_opt("a=1", NULL, "b", v, sizeof(v)), 0);
	ck_assert_int_eq(pk_qc_opt("a=0123456789abcdefXYZ", NULL, "a", v,
				   sizeof(v)), -ENAMETOOLONG);
	ck_assert_int_eq(pk_qc_opt("", "type", "type", v, sizeof(v)), 0);
	ck_assert_int_eq(pk_qc_value("{\"id\":\"x\",\"share\":false}", NULL,
				     "share", v, sizeof(v)), 1);
	ck_assert_str_eq(v, "off");
	ck_assert_int_eq(pk_qc_value("{broken", NULL, "id", v, sizeof(v)), 0);
	ck_assert_int_eq(pk_qc_bool("on"), 1);
	ck_assert_int_eq(pk_qc_bool("off"), 0);
}
END_TEST

START_TEST(split_cmdline)
{
	char buf[] = "qemu\0-name\0guest=x\0";
	char *argv[8];

	ck_assert_int_eq(pk_qc_split(buf, sizeof(buf) - 1, argv, 8), 3);
	ck_assert_str_eq(argv[2], "guest=x");
	ck_assert_int_eq(pk_qc_split(buf, sizeof(buf) - 1, argv, 2), 2);
}
END_TEST

/* ---- suite cmdline: matching, naming, refusals ----------------------------- */

START_TEST(match_mappings)
{
	char *a[] = { "qemu",
		      "-object", "memory-backend-memfd,id=m0,size=1G",
		      "-object", "memory-backend-file,id=f0,size=1G,share=on,mem-path=/dev/shm",
		      "-object", "memory-backend-memfd,id=m1,size=1G",
		      "-object", "memory-backend-file,id=f1,size=1G,share=on,mem-path=/dev/shm/named" };
	const char *paths[PK_QC_MAX_BACKENDS] = { 0 };
	uint64_t used = 0;

	parse(ARGC(a), a);
	ck_assert_int_eq(pk_backend_match(&C, paths, "/memfd:test (deleted)",
					  &used), -ENOENT);
	ck_assert_int_eq(pk_backend_match(&C, paths,
					  "/memfd:memory-backend-memfd (deleted)",
					  &used), 0);
	ck_assert_int_eq(pk_backend_match(&C, paths, "/dev/shm/named", &used),
			 3);
	ck_assert_int_eq(pk_backend_match(&C, paths,
					  "/dev/shm/qemu_back_mem.f0.Ab12Cd (deleted)",
					  &used), 1);
	ck_assert_int_eq(pk_backend_match(&C, paths,
					  "/memfd:memory-backend-memfd (deleted)",
					  &used), 2);
	/* A third memfd backend QEMU maps is not on the command line. */
	ck_assert_int_eq(pk_backend_match(&C, paths,
					  "/memfd:memory-backend-memfd (deleted)",
					  &used), -ENOENT);
	ck_assert_int_eq(pk_backend_match(&C, paths, "/dev/shm/other", &used),
			 -ENOENT);
	/* The caller's canonical mem-path wins over the written one. */
	used = 0;
	paths[3] = "/run/shm/named";
	ck_assert_int_eq(pk_backend_match(&C, paths, "/run/shm/named", &used),
			 3);
}
END_TEST

START_TEST(vm_names)
{
	char out[PK_PROTO_NAME_MAX];
	char longbase[100];

	ck_assert_int_eq(pk_backend_sanitize("my vm/ü", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "my_vm___"); /* ü is two bytes */
	ck_assert_int_eq(pk_backend_sanitize("", out, sizeof(out)), -EINVAL);
	ck_assert_int_eq(pk_backend_vm_name("web-1", "pc.ram", 0, out,
					    sizeof(out)), 0);
	ck_assert_str_eq(out, "web-1");
	ck_assert_int_eq(pk_backend_vm_name("web-1", "ram-node1", 1, out,
					    sizeof(out)), 0);
	ck_assert_str_eq(out, "web-1-ram-node1");
	memset(longbase, 'b', sizeof(longbase) - 1);
	longbase[sizeof(longbase) - 1] = '\0';
	ck_assert_int_eq(pk_backend_vm_name(longbase, "node0", 1, out,
					    sizeof(out)), 0);
	ck_assert_uint_eq(strlen(out), sizeof(out) - 1);
	ck_assert_str_eq(out + strlen(out) - 6, "-node0"); /* id kept */
}
END_TEST

START_TEST(refusals)
{
	struct pk_qc_backend b = { .type = PK_QC_BE_FILE, .share = 1,
				   .ram = 1 };

	ck_assert_ptr_null(pk_backend_refusal(&b, 0)); /* unlinked temp file */
	ck_assert_ptr_nonnull(pk_backend_refusal(&b, 1)); /* named file */
	b.discard_data = 1;
	ck_assert_ptr_null(pk_backend_refusal(&b, 1));
	b.ram = 0;
	ck_assert_ptr_nonnull(pk_backend_refusal(&b, 0));
	b = (struct pk_qc_backend){ .type = PK_QC_BE_MEMFD, .ram = 1 };
	ck_assert_ptr_nonnull(pk_backend_refusal(&b, 0)); /* share=off */
}
END_TEST

/* ====================================================================== */
/* suite qemu: a real QEMU with the shim, a real daemon                    */
/* ====================================================================== */

#define QEMU_RAM_MIB 256
#define BLOB_ADDR 0x2000000ULL /* 32 MiB */
#define BLOB_BYTES (32ULL << 20)
/*
 * Deadlines, each times pk_test_time_scale():
 *  - WAIT_MS: QEMU's start to its RAM mapped, where the shim attaches
 *    (a few seconds under TCG on a loaded host);
 *  - RETRY_MS: a daemon that came late: the shim's next retry (every
 *    PK_RETRY_MS) and its attach;
 *  - DROP_MS: the daemon drops a VM whose QEMU quit or died;
 *  - QMP_IO_MS: one QMP command (pmemsave of BLOB_BYTES included, every
 *    page of it swapped in at 4 MiB/s or faster).
 */
#define WAIT_MS scaled_ms(20000)
#define RETRY_MS scaled_ms(PK_RETRY_MS + 5000)
#define DROP_MS scaled_ms(5000)
#define QMP_IO_MS scaled_ms(10000 + (BLOB_BYTES >> 20) * 1000 / 4)
/* The slowest migration: precopy held to 4 MiB/s (the postcopy case). */
#define MIGRATE_MIN_MIB_S 4

struct qemu {
	pid_t pid;
	char name[48];
	/* Two QMP monitors: the shim registers the first as the VM's
	 * balloon channel and the daemon's bridge holds it (a QMP socket
	 * serves one client at a time), so the test speaks on the second. */
	char qmp_bridge[108];
	char qmp[108];
	char err[128]; /* its stderr */
};

struct qmp {
	int fd;
	FILE *f;
};

static struct pk_test_daemon D, D2;
static struct qemu Q[2];
static char blob_path[128];

static void qemu_setup(void)
{
	ck_assert_msg(pk_test_daemon_start(&D, NULL) == 0,
		      "cannot start the daemon: %s", D.error);
	memset(Q, 0, sizeof(Q));
	memset(&D2, 0, sizeof(D2));
}

static void qemu_kill(struct qemu *q)
{
	if (q->pid > 0) {
		kill(q->pid, SIGKILL);
		waitpid(q->pid, NULL, 0);
		q->pid = 0;
	}
}

/*
 * A checked teardown runs only after a test body that passed (a failed
 * assertion _exit()s the test's process first), and its own failed
 * assertion fails the test: so every test ends by judging its daemons
 * here, after its QEMUs are gone.
 */
static void qemu_teardown(void)
{
	qemu_kill(&Q[0]);
	qemu_kill(&Q[1]);
	if (D2.pid)
		pk_test_daemon_stop_ok(&D2);
	pk_test_daemon_stop_ok(&D);
}

/* A reproducible random blob of BLOB_BYTES in the fixture's directory. */
static void make_blob(void)
{
	uint64_t x = 0x9e3779b97f4a7c15ULL, buf[8192];
	FILE *f;

	snprintf(blob_path, sizeof(blob_path), "%s/blob.bin", D.dir);
	f = fopen(blob_path, "we");
	ck_assert_ptr_nonnull(f);
	for (uint64_t done = 0; done < BLOB_BYTES; done += sizeof(buf)) {
		for (size_t i = 0; i < 8192; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			buf[i] = x;
		}
		ck_assert_uint_eq(fwrite(buf, sizeof(buf), 1, f), 1);
	}
	ck_assert_int_eq(fclose(f), 0);
}

/* The sanitizer runtimes this test runs with, to preload before the shim. */
static int find_sanitizers(struct dl_phdr_info *info, size_t size, void *arg)
{
	char *out = arg;
	(void)size;
	if (strstr(info->dlpi_name, "/libasan.so") ||
	    strstr(info->dlpi_name, "/libubsan.so")) {
		strcat(out, info->dlpi_name);
		strcat(out, ":");
	}
	return 0;
}

/*
 * Start QEMU: 256 MiB memfd RAM, -name guest=NAME, a QMP socket, the shim
 * pointed at sock; env and args (NULL-terminated, may be NULL) add to it.
 */
static void qemu_start(struct qemu *q, const char *name, const char *sock,
		       const char *const env[], const char *const args[])
{
	const char *bin = getenv("PK_QEMU"), *shim = getenv("PK_PRELOAD");
	char preload[1024] = "", ram[64], nm[80], qmp[160], qmp_bridge[160];
	char *argv[64];
	int n = 0;

	ck_assert_msg(bin && *bin, "PK_QEMU is not set: qemu-system-x86_64 "
				   "was not found when meson configured");
	ck_assert_msg(shim && *shim, "PK_PRELOAD is not set: run via meson");
	dl_iterate_phdr(find_sanitizers, preload);
	strcat(preload, shim);
	snprintf(q->name, sizeof(q->name), "%s", name);
	snprintf(q->qmp_bridge, sizeof(q->qmp_bridge), "%s/%s.bqmp", D.dir,
		 name);
	snprintf(q->qmp, sizeof(q->qmp), "%s/%s.qmp", D.dir, name);
	snprintf(q->err, sizeof(q->err), "%s/%s.err", D.dir, name);
	snprintf(ram, sizeof(ram), "memory-backend-memfd,id=ram,size=%dM,share=on",
		 QEMU_RAM_MIB);
	snprintf(nm, sizeof(nm), "guest=%s,debug-threads=on", name);
	snprintf(qmp_bridge, sizeof(qmp_bridge), "unix:%s,server=on,wait=off",
		 q->qmp_bridge);
	snprintf(qmp, sizeof(qmp), "unix:%s,server=on,wait=off", q->qmp);
	const char *base[] = { bin, "-accel", "tcg", "-nodefaults",
			       "-nographic", "-m", "256", "-object", ram,
			       "-machine", "pc,memory-backend=ram", "-name", nm,
			       "-qmp", qmp_bridge, "-qmp", qmp };
	for (size_t i = 0; i < sizeof(base) / sizeof(base[0]); i++)
		argv[n++] = (char *)base[i];
	for (size_t i = 0; args && args[i] && n < 63; i++)
		argv[n++] = (char *)args[i];
	argv[n] = NULL;

	fflush(NULL);
	q->pid = fork();
	ck_assert_int_ge(q->pid, 0);
	if (q->pid == 0) {
		int err = open(q->err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int null = open("/dev/null", O_RDWR);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(null, 0);
		dup2(null, 1);
		dup2(err, 2);
		setenv("LD_PRELOAD", preload, 1);
		setenv("PAGEKEEPER_SOCKET", sock, 1);
		/* QEMU is not instrumented: its leaks are not ours. */
		setenv("ASAN_OPTIONS", "detect_leaks=0", 1);
		unsetenv("PAGEKEEPER_DISABLE");
		unsetenv("PAGEKEEPER_VM_NAME");
		for (size_t i = 0; env && env[i]; i++)
			putenv((char *)env[i]);
		execv(bin, argv);
		_exit(127);
	}
}

static char *read_file(const char *path)
{
	FILE *f = fopen(path, "re");
	char *buf = calloc(1, 65536);
	size_t n;

	ck_assert_ptr_nonnull(buf);
	if (f) {
		n = fread(buf, 1, 65535, f);
		buf[n] = '\0';
		fclose(f);
	}
	return buf;
}

static int err_has(const struct qemu *q, const char *text)
{
	char *s = read_file(q->err);
	int hit = strstr(s, text) != NULL;
	free(s);
	return hit;
}

static void qmp_open(struct qmp *m, const struct qemu *q)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = QMP_IO_MS / 1000 + 1 };
	long deadline = pk_test_now_ms() + WAIT_MS;
	char line[4096];

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", q->qmp);
	for (;;) {
		m->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		ck_assert_int_ge(m->fd, 0);
		if (connect(m->fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			break;
		close(m->fd);
		ck_assert_msg(pk_test_now_ms() < deadline &&
			      waitpid(q->pid, NULL, WNOHANG) == 0,
			      "QEMU %s did not open its QMP socket within %d ms "
			      "(or exited); stderr: %s", q->name, WAIT_MS,
			      read_file(q->err));
		sleep_ms(20);
	}
	setsockopt(m->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	m->f = fdopen(m->fd, "r+");
	ck_assert_ptr_nonnull(m->f);
	ck_assert_ptr_nonnull(fgets(line, sizeof(line), m->f)); /* greeting */
	ck_assert_ptr_nonnull(strstr(line, "QMP"));
}

/* Run one command; returns its "return" (caller puts) or fails. */
static json_object *qmp_cmd(struct qmp *m, const char *cmd)
{
	char line[65536];

	ck_assert_int_ge(fprintf(m->f, "%s\n", cmd), 0);
	fflush(m->f);
	while (fgets(line, sizeof(line), m->f)) {
		json_object *o = json_tokener_parse(line), *r;
		if (!o)
			continue;
		if (json_object_object_get_ex(o, "return", &r)) {
			json_object_get(r);
			json_object_put(o);
			return r;
		}
		ck_assert_msg(!json_object_object_get_ex(o, "error", &r),
			      "QMP %s failed: %s", cmd, line);
		json_object_put(o); /* an event */
	}
	ck_abort_msg("QMP %s: no answer", cmd);
	return NULL;
}

static void qmp_connect(struct qmp *m, const struct qemu *q)
{
	qmp_open(m, q);
	json_object_put(qmp_cmd(m, "{\"execute\":\"qmp_capabilities\"}"));
}

static void qmp_close(struct qmp *m)
{
	if (m->f)
		fclose(m->f);
	m->f = NULL;
}

/* query-status: "running", "inmigrate", ... (static buffer). */
static const char *qmp_status(struct qmp *m)
{
	static char status[32];
	json_object *r = qmp_cmd(m, "{\"execute\":\"query-status\"}"), *s;

	ck_assert(json_object_object_get_ex(r, "status", &s));
	snprintf(status, sizeof(status), "%s", json_object_get_string(s));
	json_object_put(r);
	return status;
}

static const char *qmp_migrate_status(struct qmp *m)
{
	static char status[32];
	json_object *r = qmp_cmd(m, "{\"execute\":\"query-migrate\"}"), *s;

	status[0] = '\0';
	if (json_object_object_get_ex(r, "status", &s))
		snprintf(status, sizeof(status), "%s",
			 json_object_get_string(s));
	json_object_put(r);
	return status;
}

/* pmemsave the blob's range and compare it with the blob. */
static void assert_blob_intact(struct qmp *m, const char *tag)
{
	char dump[160], cmd[400];
	char *a = malloc(BLOB_BYTES), *b = malloc(BLOB_BYTES);
	FILE *f;

	snprintf(dump, sizeof(dump), "%s/dump-%s.bin", D.dir, tag);
	snprintf(cmd, sizeof(cmd),
		 "{\"execute\":\"pmemsave\",\"arguments\":{\"val\":%llu,"
		 "\"size\":%llu,\"filename\":\"%s\"}}",
		 BLOB_ADDR, BLOB_BYTES, dump);
	json_object_put(qmp_cmd(m, cmd)); /* returns once written */
	ck_assert(a && b);
	f = fopen(blob_path, "re");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fread(a, 1, BLOB_BYTES, f), BLOB_BYTES);
	fclose(f);
	f = fopen(dump, "re");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fread(b, 1, BLOB_BYTES, f), BLOB_BYTES);
	fclose(f);
	ck_assert_msg(memcmp(a, b, BLOB_BYTES) == 0,
		      "%s: guest RAM differs from what was loaded", tag);
	unlink(dump);
	free(a);
	free(b);
}

static const char *blob_args[4];
static char blob_dev[256];

static const char *const *with_blob(void)
{
	make_blob();
	snprintf(blob_dev, sizeof(blob_dev),
		 "loader,file=%s,addr=0x%llx,force-raw=on", blob_path,
		 BLOB_ADDR);
	blob_args[0] = "-device";
	blob_args[1] = blob_dev;
	blob_args[2] = NULL;
	return blob_args;
}

static void vm_name(char *out, size_t len, const char *what)
{
	snprintf(out, len, "pk-%s-%d", what, (int)getpid());
}

/* Attached with the right name, size, pid, balloon and the settings of
 * its environment (PAGEKEEPER_SHARES, _MAX: the registration's trailer);
 * QMP quit detaches. */
START_TEST(qemu_attach_status)
{
	char name[48], line[128], got[64];
	const char *env[] = { "PAGEKEEPER_SHARES=500", "PAGEKEEPER_MAX=128M",
			      NULL };
	struct qmp m;
	int st;

	vm_name(name, sizeof(name), "attach");
	qemu_start(&Q[0], name, D.sock, env, NULL);
	ck_assert_msg(wait_vm_listed(&D, name, 1, WAIT_MS),
		      "VM %s never registered; QEMU stderr: %s", name,
		      read_file(Q[0].err));
	ck_assert_double_eq(vm_field(&D, name, "configured_mib"), QEMU_RAM_MIB);
	ck_assert_int_eq((int)vm_field(&D, name, "pid"), Q[0].pid);
	ck_assert_msg(vm_field(&D, name, "shares") == 500 &&
		      vm_field(&D, name, "max_mib") == 128, "%s: shares %.0f, "
		      "max %.1f MiB: want the environment's 500 and 128 MiB",
		      name, vm_field(&D, name, "shares"),
		      vm_field(&D, name, "max_mib"));
	vm_string(&D, name, "balloon", got, sizeof(got));
	ck_assert_str_eq(got, "qmp");
	vm_string(&D, name, "ram", got, sizeof(got));
	ck_assert_str_eq(got, "shared");
	snprintf(line, sizeof(line), "pagekeeper-preload: VM '%s' attached", name);
	ck_assert(err_has(&Q[0], line));
	qmp_connect(&m, &Q[0]);
	ck_assert_str_eq(qmp_status(&m), "running");
	/* SeaBIOS runs, faulting through the daemon. */
	{
		long deadline = pk_test_now_ms() + WAIT_MS;
		while (vm_field(&D, name, "faults_total") <= 0 &&
		       pk_test_now_ms() < deadline)
			sleep_ms(20);
	}
	ck_assert_msg(vm_field(&D, name, "faults_total") > 0, "%s: no fault "
		      "through the daemon within %d ms of the guest running",
		      name, WAIT_MS);
	ck_assert_str_eq(qmp_status(&m), "running");

	/* A clean exit unmaps RAM: the shim detaches, the VM goes at once. */
	json_object_put(qmp_cmd(&m, "{\"execute\":\"quit\"}"));
	qmp_close(&m);
	ck_assert_int_eq(waitpid(Q[0].pid, &st, 0), Q[0].pid);
	Q[0].pid = 0;
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
		      "QEMU exit status 0x%x", st);
	ck_assert_msg(wait_vm_listed(&D, name, 0, DROP_MS), "VM %s still "
		      "listed %d ms after QEMU quit", name, DROP_MS);
	ck_assert(pk_test_daemon_alive(&D));
}
END_TEST

/* RECLAIM evicts QEMU's pages; QEMU runs on and reads them back intact. */
START_TEST(qemu_reclaim)
{
	struct pk_reclaim_reply r;
	char name[48];
	struct qmp m;

	vm_name(name, sizeof(name), "reclaim");
	qemu_start(&Q[0], name, D.sock, NULL, with_blob());
	ck_assert_msg(wait_vm_listed(&D, name, 1, WAIT_MS),
		      "VM %s never registered; QEMU stderr: %s", name,
		      read_file(Q[0].err));
	qmp_connect(&m, &Q[0]);
	ck_assert_str_eq(qmp_status(&m), "running");
	ck_assert_double_ge(vm_field(&D, name, "resident_mib"),
			    (double)(BLOB_BYTES >> 20));

	ck_assert_msg(pk_test_reclaim(D.sock, name, 24ULL << 20, &r) == 0,
		      "reclaim: %s", r.reason);
	ck_assert_uint_gt(r.pages_swapped, 0);
	ck_assert_double_gt(vm_field(&D, name, "swapped_mib"), 0);
	ck_assert_str_eq(qmp_status(&m), "running");

	/* pmemsave reads guest RAM from QEMU's main thread: every evicted
	 * page of the blob faults and comes back from the swap file. */
	assert_blob_intact(&m, "reclaim");
	ck_assert_double_gt(vm_field(&D, name, "swapins"), 0);
	ck_assert_str_eq(qmp_status(&m), "running");
	qmp_close(&m);
}
END_TEST

/*
 * No daemon: QEMU runs unmanaged, says so once, attaches when one comes,
 * and what its RAM held before (the blob, loaded at QEMU's start) is
 * evicted and read back intact: a late attach keeps the guest's data.
 */
START_TEST(qemu_daemon_absent)
{
	char name[48], sock[128], extra[160], line[512];
	struct pk_reclaim_reply r;
	struct qmp m;

	vm_name(name, sizeof(name), "absent");
	snprintf(sock, sizeof(sock), "%s/later.sock", D.dir);
	qemu_start(&Q[0], name, sock, NULL, with_blob());
	qmp_connect(&m, &Q[0]);
	ck_assert_str_eq(qmp_status(&m), "running");
	snprintf(line, sizeof(line),
		 "pagekeeper-preload: VM '%s' runs unmanaged: connect %s: "
		 "No such file or directory; retrying every 1 s",
		 name, sock);
	ck_assert_msg(err_has(&Q[0], line), "stderr lacks \"%s\": %s", line,
		      read_file(Q[0].err));
	/* Not a wait for anything: the window in which the shim retries
	 * (every PK_RETRY_MS) twice or more, and must not say so again. */
	sleep_ms(PK_RETRY_MS * 5 / 2);
	{
		char *s = read_file(Q[0].err);
		ck_assert_ptr_null(strstr(strstr(s, line) + 1, line));
		free(s);
	}
	ck_assert_str_eq(qmp_status(&m), "running");

	/* A daemon appears on that socket: the background retry attaches. */
	snprintf(extra, sizeof(extra), "--socket %s", sock);
	ck_assert_msg(pk_test_daemon_start(&D2, extra) == 0, "%s", D2.error);
	ck_assert_msg(wait_vm_listed(&D2, name, 1, RETRY_MS),
		      "VM %s not attached %d ms after the daemon came; "
		      "stderr: %s", name, RETRY_MS, read_file(Q[0].err));
	ck_assert_double_eq(vm_field(&D2, name, "configured_mib"),
			    QEMU_RAM_MIB);
	ck_assert_str_eq(qmp_status(&m), "running");

	/* The blob was in RAM before the attach: the daemon counts it
	 * resident, evicts it and QEMU reads it back byte for byte. */
	ck_assert_msg(vm_field(&D2, name, "resident_mib") >=
		      (double)(BLOB_BYTES >> 20), "%s: %.1f MiB resident after "
		      "the late attach; the blob alone is %llu MiB", name,
		      vm_field(&D2, name, "resident_mib"), BLOB_BYTES >> 20);
	ck_assert_msg(pk_test_reclaim(D2.sock, name, 24ULL << 20, &r) == 0,
		      "reclaim: %s", r.reason);
	ck_assert_uint_gt(r.pages_swapped, 0);
	assert_blob_intact(&m, "absent");
	ck_assert_double_gt(vm_field(&D2, name, "swapins"), 0);
	ck_assert_str_eq(qmp_status(&m), "running");
	qmp_close(&m);
}
END_TEST

/* QEMU killed mid-run: the daemon drops the VM, keeps serving. */
START_TEST(qemu_killed)
{
	struct pk_reclaim_reply r;
	char name[48];

	vm_name(name, sizeof(name), "killed");
	qemu_start(&Q[0], name, D.sock, NULL, with_blob());
	ck_assert_msg(wait_vm_listed(&D, name, 1, WAIT_MS),
		      "VM %s never registered; QEMU stderr: %s", name,
		      read_file(Q[0].err));
	ck_assert_int_eq(pk_test_reclaim(D.sock, name, 8ULL << 20, &r), 0);
	qemu_kill(&Q[0]);
	ck_assert_msg(wait_vm_listed(&D, name, 0, DROP_MS),
		      "VM %s still listed %d ms after QEMU was killed", name,
		      DROP_MS);
	ck_assert(pk_test_daemon_alive(&D));
	ck_assert_int_eq(pk_test_vm_count(D.sock), 0);
}
END_TEST

/* The daemon restarts: the client library registers QEMU again. */
START_TEST(qemu_daemon_restart)
{
	char name[48], sock[128], extra[160];
	struct qmp m;

	vm_name(name, sizeof(name), "restart");
	snprintf(sock, sizeof(sock), "%s/restart.sock", D.dir);
	snprintf(extra, sizeof(extra), "--socket %s", sock);
	ck_assert_msg(pk_test_daemon_start(&D2, extra) == 0, "%s", D2.error);
	qemu_start(&Q[0], name, sock, NULL, with_blob());
	ck_assert_msg(wait_vm_listed(&D2, name, 1, WAIT_MS),
		      "never registered: %s", read_file(Q[0].err));
	pk_test_daemon_stop_ok(&D2); /* SIGTERM: it must exit 0 */
	ck_assert_msg(pk_test_daemon_start(&D2, extra) == 0, "%s", D2.error);
	ck_assert_msg(wait_vm_listed(&D2, name, 1, RETRY_MS), "VM %s did not "
		      "re-register with the new daemon within %d ms", name,
		      RETRY_MS);
	qmp_connect(&m, &Q[0]);
	ck_assert_str_eq(qmp_status(&m), "running");
	assert_blob_intact(&m, "restart");
	qmp_close(&m);
}
END_TEST

/* PAGEKEEPER_DISABLE=1: no registration and not a word. */
START_TEST(qemu_disabled)
{
	const char *env[] = { "PAGEKEEPER_DISABLE=1", NULL };
	char name[48];
	struct qmp m;

	vm_name(name, sizeof(name), "off");
	qemu_start(&Q[0], name, D.sock, env, NULL);
	qmp_connect(&m, &Q[0]);
	ck_assert_str_eq(qmp_status(&m), "running");
	/* QMP answers after the RAM is mapped, where the shim attaches at
	 * once; a retrying shim would try within PK_RETRY_MS: give it one
	 * and a half periods, in which nothing may register. */
	ck_assert_msg(!wait_vm_listed(&D, name, 1,
				      scaled_ms(PK_RETRY_MS * 3 / 2)),
		      "%s registered with PAGEKEEPER_DISABLE=1", name);
	ck_assert_int_eq(pk_test_vm_count(D.sock), 0);
	ck_assert(!err_has(&Q[0], "pagekeeper-preload"));
	qmp_close(&m);
}
END_TEST

/*
 * Migration to a destination started with -incoming (_i: 0 precopy,
 * 1 postcopy).  The destination must not attach while the migration
 * runs (in postcopy QEMU registers its RAM on its own userfaultfd while
 * the guest already runs), must attach once it is over, and the source's
 * evicted pages must arrive intact.
 */
START_TEST(qemu_incoming)
{
	int postcopy = _i;
	char src[48], dst[48], incoming[64], uri[160];
	const char *dst_args[] = { "-incoming", incoming, NULL };
	struct pk_reclaim_reply r;
	struct qmp a, b;
	int migrate_ms = scaled_ms(QEMU_RAM_MIB * 1000.0 / MIGRATE_MIN_MIB_S +
				   20000);
	int saw_postcopy = 0;
	long deadline;

	vm_name(src, sizeof(src), postcopy ? "psrc" : "src");
	vm_name(dst, sizeof(dst), postcopy ? "pdst" : "dst");
	snprintf(incoming, sizeof(incoming), "tcp:127.0.0.1:%d", free_port());
	snprintf(uri, sizeof(uri),
		 "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"%s\"}}",
		 incoming);
	qemu_start(&Q[0], src, D.sock, NULL, with_blob());
	qemu_start(&Q[1], dst, D.sock, NULL, dst_args);
	ck_assert_msg(wait_vm_listed(&D, src, 1, WAIT_MS),
		      "source never registered: %s", read_file(Q[0].err));
	qmp_connect(&a, &Q[0]);
	qmp_connect(&b, &Q[1]);
	ck_assert_str_eq(qmp_status(&b), "inmigrate");
	ck_assert_double_lt(vm_field(&D, dst, "configured_mib"), 0);
	/* The source sends pages it has to read back from swap. */
	ck_assert_int_eq(pk_test_reclaim(D.sock, src, 16ULL << 20, &r), 0);
	ck_assert_uint_gt(r.pages_swapped, 0);

	if (postcopy) {
		const char *cap = "{\"execute\":\"migrate-set-capabilities\","
				  "\"arguments\":{\"capabilities\":[{\"capability\":"
				  "\"postcopy-ram\",\"state\":true}]}}";
		json_object_put(qmp_cmd(&a, cap));
		json_object_put(qmp_cmd(&b, cap));
		/* Slow precopy down so postcopy really takes over. */
		json_object_put(qmp_cmd(&a, "{\"execute\":\"migrate-set-parameters\","
					    "\"arguments\":{\"max-bandwidth\":4194304}}"));
	}
	json_object_put(qmp_cmd(&a, uri));
	if (postcopy) {
		/* Postcopy takes over a precopy that really runs. */
		deadline = pk_test_now_ms() + WAIT_MS;
		while (strcmp(qmp_migrate_status(&a), "active") != 0) {
			ck_assert_msg(pk_test_now_ms() < deadline, "the "
				      "migration is not active %d ms after "
				      "migrate (%s)",
				      WAIT_MS, qmp_migrate_status(&a));
			sleep_ms(20);
		}
		json_object_put(qmp_cmd(&a, "{\"execute\":\"migrate-start-postcopy\"}"));
	}
	deadline = pk_test_now_ms() + migrate_ms;
	for (;;) {
		const char *st = qmp_migrate_status(&a);
		if (!strcmp(st, "completed"))
			break;
		ck_assert_msg(strcmp(st, "failed") != 0, "migration failed: %s",
			      read_file(Q[1].err));
		ck_assert_msg(pk_test_now_ms() < deadline, "migration still "
			      "in %s after %d ms (%d MiB at %d MiB/s)", st,
			      migrate_ms, QEMU_RAM_MIB, MIGRATE_MIN_MIB_S);
		saw_postcopy |= !strcmp(st, "postcopy-active");
		/* Never attached while QEMU may own the RAM's uffd. */
		ck_assert_msg(vm_field(&D, dst, "configured_mib") < 0,
			      "destination attached during migration (%s)", st);
		sleep_ms(50);
	}
	if (postcopy)
		ck_assert_msg(saw_postcopy, "postcopy never started");
	ck_assert_msg(wait_vm_listed(&D, dst, 1, WAIT_MS), "the destination "
		      "did not attach within %d ms of the migration's end: %s",
		      WAIT_MS, read_file(Q[1].err));
	ck_assert_str_eq(qmp_status(&b), "running");

	/* The destination's own swap works, and the data came across. */
	ck_assert_int_eq(pk_test_reclaim(D.sock, dst, 16ULL << 20, &r), 0);
	ck_assert_uint_gt(r.pages_swapped, 0);
	assert_blob_intact(&b, postcopy ? "postcopy" : "precopy");
	ck_assert_str_eq(qmp_status(&b), "running");
	qmp_close(&a);
	qmp_close(&b);
}
END_TEST

static Suite *preload_suite(void)
{
	Suite *s = suite_create("cmdline");
	TCase *t = tcase_create("cmdline");
	tcase_add_test(t, name_forms);
	tcase_add_test(t, name_missing_or_long);
	tcase_add_test(t, qmp_direct);
	tcase_add_test(t, qmp_chardev_mon);
	tcase_add_test(t, qmp_libvirt_fd);
	tcase_add_test(t, incoming_forms);
	tcase_add_test(t, no_guest);
	tcase_add_test(t, backends_keyvalue);
	tcase_add_test(t, backends_numa_prealloc);
	tcase_add_test(t, libvirt_argv);
	tcase_add_test(t, conflicts);
	tcase_add_test(t, too_many_backends);
	tcase_add_test(t, opt_reader);
	tcase_add_test(t, split_cmdline);
	tcase_add_test(t, match_mappings);
	tcase_add_test(t, vm_names);
	tcase_add_test(t, refusals);
	suite_add_tcase(s, t);
	return s;
}

static Suite *qemu_suite(void)
{
	Suite *s = suite_create("qemu");
	TCase *t = tcase_create("qemu");

	tcase_add_checked_fixture(t, qemu_setup, qemu_teardown);
	tcase_set_timeout(t, 300 * pk_test_time_scale());
	tcase_add_test(t, qemu_attach_status);
	tcase_add_test(t, qemu_reclaim);
	tcase_add_test(t, qemu_daemon_absent);
	tcase_add_test(t, qemu_killed);
	tcase_add_test(t, qemu_daemon_restart);
	tcase_add_test(t, qemu_disabled);
	tcase_add_loop_test(t, qemu_incoming, 0, 2);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(preload_suite());
	int failed;

	srunner_add_suite(sr, qemu_suite());
	srunner_run_all(sr, CK_NORMAL); /* CK_RUN_SUITE picks one */
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
