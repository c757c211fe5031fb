package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/agentapi"
	"github.com/berth-project/berth/internal/fsproto"
)

// SMB shares (FSx for Windows File Server). The agent serves its zone's
// endpoint of the FSx file systems the server gives it (agentapi.SMBShare):
// for each, a Berth mount of the backing file system (a `berth fs mount`
// process, as for EFS volumes), a network namespace with an address of
// the instance's task network (a pause container, as an awsvpc task has:
// the file server's own address, port 445), and Debian's Samba (smbd)
// started in that namespace over the mount, one share named "share".
//
// Samba finds its users through nss_wrapper (a passwd file of the share's
// users), so the host's accounts are never touched. smbd, the mount and
// the namespace outlive a restart of the agent, which finds them again;
// an smbd that stopped is started again at the next poll.

// LabelSMB marks an SMB endpoint's pause container with its file system.
const LabelSMB = "com.berth.smb"

// smbPoll is how often the agent asks which shares it serves.
const smbPoll = 2 * time.Second

// smbTools are the programs and library SMB shares need, or "" when the
// host lacks one (then the agent serves none).
type smbTools struct{ smbd, pdbedit, nsenter, nssWrapper string }

func findSMBTools() (smbTools, error) {
	var t smbTools
	var err error
	if t.smbd, err = exec.LookPath("smbd"); err != nil {
		if _, e := os.Stat("/usr/sbin/smbd"); e != nil {
			return t, errors.New("smbd not found (Debian package samba)")
		}
		t.smbd = "/usr/sbin/smbd"
	}
	if t.pdbedit, err = exec.LookPath("pdbedit"); err != nil {
		return t, errors.New("pdbedit not found (Debian package samba)")
	}
	if t.nsenter, err = exec.LookPath("nsenter"); err != nil {
		return t, errors.New("nsenter not found (Debian package util-linux)")
	}
	for _, p := range []string{"/usr/lib/x86_64-linux-gnu/libnss_wrapper.so", "/usr/lib/aarch64-linux-gnu/libnss_wrapper.so", "/usr/lib/libnss_wrapper.so", "/usr/lib64/libnss_wrapper.so"} {
		if _, err := os.Stat(p); err == nil {
			t.nssWrapper = p
			return t, nil
		}
	}
	return t, errors.New("libnss_wrapper.so not found (Debian package libnss-wrapper)")
}

// smbShare is one share this agent serves.
type smbShare struct {
	fs        string
	addr      string // the endpoint's address
	container string // its pause container
	users     string // hash of the users last written to the passdb
}

func (a *Agent) smbDir(fs string) string { return filepath.Join(a.cfg.DataDir, "smb", fs) }

// runSMB polls for the shares this instance serves and keeps them served.
func (a *Agent) runSMB(ctx context.Context) {
	tools, terr := findSMBTools()
	if terr != nil {
		a.log.Info("this instance serves no SMB shares (FSx for Windows File Server)", "why", terr)
	}
	shares := map[string]*smbShare{}
	var needMount []string
	for ctx.Err() == nil {
		req := &agentapi.SMBRequest{Cluster: a.cfg.Cluster, ContainerInstance: a.arn, Capable: terr == nil, Mount: needMount}
		for _, sh := range shares {
			req.Serving = append(req.Serving, agentapi.SMBEndpoint{FileSystemID: sh.fs, Address: sh.addr, Ready: a.smbReady(sh)})
		}
		var out agentapi.SMBResponse
		if err := a.api.Post(ctx, "/berth/v1/agent/smb", req, &out); err != nil {
			if ctx.Err() == nil {
				a.log.Debug("poll SMB shares", "err", err)
			}
		} else {
			needMount = a.reconcileSMB(ctx, tools, shares, out.Shares)
			if len(needMount) > 0 {
				continue // ask for their grants at once
			}
			if terr != nil {
				return // it said it serves nothing, and stopped what it served
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(smbPoll):
		}
	}
}

// reconcileSMB serves the shares given and stops the others (including
// any found on disk from before a restart). It returns the file systems
// that need a mount grant.
func (a *Agent) reconcileSMB(ctx context.Context, tools smbTools, shares map[string]*smbShare, want []agentapi.SMBShare) []string {
	wanted := map[string]bool{}
	var needMount []string
	for i := range want {
		sh := &want[i]
		if !fsproto.ValidFSID(sh.FileSystemID) {
			continue // names a directory here: only a file system id may
		}
		wanted[sh.FileSystemID] = true
		cur := shares[sh.FileSystemID]
		if cur == nil {
			cur = &smbShare{fs: sh.FileSystemID}
			shares[sh.FileSystemID] = cur
		}
		need, err := a.serveShare(ctx, tools, cur, sh)
		if need {
			needMount = append(needMount, sh.FileSystemID)
		}
		if err != nil {
			a.log.Warn("serve SMB share", "fs", sh.FileSystemID, "err", err)
		}
	}
	// Stop what is no longer ours: in memory, or left on disk.
	dirs, _ := os.ReadDir(filepath.Join(a.cfg.DataDir, "smb"))
	for _, d := range dirs {
		if d.IsDir() && !wanted[d.Name()] {
			if _, ok := shares[d.Name()]; !ok {
				shares[d.Name()] = &smbShare{fs: d.Name()}
			}
		}
	}
	for fs, sh := range shares {
		if !wanted[fs] {
			a.stopShare(ctx, sh)
			delete(shares, fs)
		}
	}
	return needMount
}

// serveShare brings one share up (idempotently): mount, namespace,
// configuration, users, smbd. It says whether it needs a mount grant.
func (a *Agent) serveShare(ctx context.Context, tools smbTools, cur *smbShare, sh *agentapi.SMBShare) (bool, error) {
	dir := a.smbDir(sh.FileSystemID)
	mp := filepath.Join(dir, "share")
	for _, d := range []string{"private", "lock", "state", "cache", "run", "ncalrpc"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return false, err
		}
	}
	if !isMountpoint(mp) {
		if sh.Mount == nil {
			return true, nil
		}
		if err := a.startMount(sh.FileSystemID, mp, sh.Mount); err != nil {
			return false, fmt.Errorf("mount: %w", err)
		}
	}
	pid, err := a.smbNamespace(ctx, cur)
	if err != nil {
		return false, err
	}
	conf := filepath.Join(dir, "smb.conf")
	confChanged, err := writeIfChanged(conf, []byte(smbConf(dir, mp, sh)))
	if err != nil {
		return false, err
	}
	restart := ""
	if cur.users == "" {
		b, _ := os.ReadFile(filepath.Join(dir, "users.sum")) // written by an earlier agent process
		cur.users = string(b)
	}
	if h := usersHash(sh.Users); h != cur.users {
		if err := a.writeUsers(tools, dir, conf, sh.Users); err != nil {
			return false, fmt.Errorf("users: %w", err)
		}
		if err := os.WriteFile(filepath.Join(dir, "users.sum"), []byte(h), 0o600); err != nil {
			return false, err
		}
		cur.users = h
		// smbd keeps the passdb it opened: a new one takes a new smbd.
		restart = "the share's users changed"
	}
	if spid := smbdPID(dir); spid > 0 {
		if !sameNetNS(spid, pid) {
			restart = "its network namespace changed"
		}
		if restart == "" {
			if confChanged {
				syscall.Kill(spid, syscall.SIGHUP) // smbd rereads its configuration
			}
			return false, nil
		}
		a.log.Info("restarting smbd", "fs", sh.FileSystemID, "why", restart)
		syscall.Kill(-spid, syscall.SIGTERM)
		for i := 0; i < 50 && smbdPID(dir) > 0; i++ {
			time.Sleep(100 * time.Millisecond)
		}
	}
	return false, a.startSMBD(tools, dir, conf, pid)
}

// smbNamespace returns the pid holding the share's network namespace,
// starting its pause container on the task network when it is not running.
func (a *Agent) smbNamespace(ctx context.Context, sh *smbShare) (int, error) {
	name := "berth-smb-" + sh.fs + "-" + a.id // one per agent: two agents may share a host
	info, err := a.docker.ContainerInspect(ctx, name)
	if err == nil && info.State.Running {
		for _, ep := range info.NetworkSettings.Networks {
			if ep.IPAddress != "" {
				sh.addr, sh.container = ep.IPAddress, info.ID
				return info.State.Pid, nil
			}
		}
	}
	if err == nil {
		a.docker.ContainerRemove(ctx, info.ID, container.RemoveOptions{Force: true})
	} else if !cerrdefs.IsNotFound(err) {
		return 0, err
	}
	p, err := a.startNamespace(ctx, name, map[string]string{LabelSMB: sh.fs, LabelCluster: a.cfg.Cluster, "com.berth.smb-instance": a.id})
	if err != nil {
		return 0, fmt.Errorf("the endpoint's network namespace: %w", err)
	}
	info, err = a.docker.ContainerInspect(ctx, p.id)
	if err != nil {
		return 0, err
	}
	sh.addr, sh.container = p.ip, p.id
	a.log.Info("SMB endpoint address", "fs", sh.fs, "address", p.ip)
	return info.State.Pid, nil
}

// smbConf is a share's Samba configuration: a standalone server of one
// share over the mount, everything under dir, signing required and
// encryption offered, no guest access, every file operation as root on
// the Berth mount (the share's users are Samba's, not the host's).
func smbConf(dir, mp string, sh *agentapi.SMBShare) string {
	workgroup := "WORKGROUP"
	if sh.Domain != "" {
		first, _, _ := strings.Cut(sh.Domain, ".")
		workgroup = strings.ToUpper(first)
		if len(workgroup) > 15 {
			workgroup = workgroup[:15]
		}
	}
	netbios := strings.ToUpper("AMZNFSX" + strings.TrimPrefix(strings.TrimPrefix(sh.FileSystemID, "fs-"), "0"))
	if len(netbios) > 15 {
		netbios = netbios[:15]
	}
	var users []string
	for _, u := range sh.Users {
		users = append(users, `"`+strings.ToLower(u.Name)+`"`)
	}
	return fmt.Sprintf(`# Written by the Berth agent for FSx file system %[1]s; rewritten at each poll.
[global]
	server role = standalone server
	server string = Berth FSx file server
	workgroup = %[2]s
	netbios name = %[3]s
	disable netbios = yes
	smb ports = 445
	server min protocol = SMB2_10
	server signing = mandatory
	smb encrypt = if_required
	map to guest = Never
	restrict anonymous = 2
	guest account = nobody
	passdb backend = tdbsam:%[4]s/private/passdb.tdb
	private dir = %[4]s/private
	lock directory = %[4]s/lock
	state directory = %[4]s/state
	cache directory = %[4]s/cache
	pid directory = %[4]s/run
	ncalrpc dir = %[4]s/ncalrpc
	log file = %[4]s/smbd.log
	max log size = 1000
	logging = file
	load printers = no
	printing = bsd
	printcap name = /dev/null
	disable spoolss = yes
	usershare max shares = 0
	kernel oplocks = no
	oplocks = no
	level2 oplocks = no
	kernel share modes = no
	ea support = no
	store dos attributes = no
	map archive = no
	strict sync = yes
	max disk size = %[5]d

[share]
	path = %[6]s
	read only = no
	valid users = %[7]s
	force user = root
	force group = root
	create mask = 0644
	directory mask = 0755
`, sh.FileSystemID, workgroup, netbios, dir, int64(sh.CapacityGiB)*1024, mp, strings.Join(users, " "))
}

func usersHash(users []agentapi.SMBUser) string {
	h := sha256.New()
	sorted := append([]agentapi.SMBUser(nil), users...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	for _, u := range sorted {
		fmt.Fprintf(h, "%s\x00%s\x00", strings.ToLower(u.Name), u.Password)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// nssEnv makes Samba's tools see the share's users (nss_wrapper), not the
// host's accounts.
func nssEnv(tools smbTools, dir string) []string {
	return append(os.Environ(), "LD_PRELOAD="+tools.nssWrapper, "NSS_WRAPPER_PASSWD="+filepath.Join(dir, "passwd"), "NSS_WRAPPER_GROUP="+filepath.Join(dir, "group"))
}

// writeUsers writes the passwd and group files nss_wrapper reads and a new
// passdb with each user's password.
func (a *Agent) writeUsers(tools smbTools, dir, conf string, users []agentapi.SMBUser) error {
	var pw, members bytes.Buffer
	pw.WriteString("root:x:0:0:root:/root:/bin/false\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
	for i, u := range users {
		name := strings.ToLower(u.Name)
		if strings.ContainsAny(name, ":\n ") {
			return fmt.Errorf("user name %q cannot be a Samba user", u.Name)
		}
		fmt.Fprintf(&pw, "%s:x:%d:70000:%s:/nonexistent:/bin/false\n", name, 70000+i, name)
		if i > 0 {
			members.WriteByte(',')
		}
		members.WriteString(name)
	}
	if err := os.WriteFile(filepath.Join(dir, "passwd"), pw.Bytes(), 0o600); err != nil {
		return err
	}
	group := "root:x:0:\nnogroup:x:65534:\nberth-smb:x:70000:" + members.String() + "\n"
	if err := os.WriteFile(filepath.Join(dir, "group"), []byte(group), 0o600); err != nil {
		return err
	}
	tmp := filepath.Join(dir, "private", "passdb.tdb.new")
	os.Remove(tmp)
	for _, u := range users {
		// pdbedit writes the passdb the configuration names; point a copy
		// of it at the new file, so smbd sees the old one until the swap.
		c, err := os.ReadFile(conf)
		if err != nil {
			return err
		}
		tconf := conf + ".new"
		c = bytes.Replace(c, []byte("tdbsam:"+filepath.Join(dir, "private", "passdb.tdb")), []byte("tdbsam:"+tmp), 1)
		if err := os.WriteFile(tconf, c, 0o600); err != nil {
			return err
		}
		cmd := exec.Command(tools.pdbedit, "-s", tconf, "-a", "-u", strings.ToLower(u.Name), "-t")
		cmd.Env = nssEnv(tools, dir)
		cmd.Stdin = strings.NewReader(u.Password + "\n" + u.Password + "\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("pdbedit %s: %v: %s", u.Name, err, strings.TrimSpace(string(out)))
		}
		os.Remove(tconf)
	}
	if len(users) == 0 {
		os.Remove(filepath.Join(dir, "private", "passdb.tdb"))
		return nil
	}
	return os.Rename(tmp, filepath.Join(dir, "private", "passdb.tdb"))
}

// startSMBD starts smbd in the namespace of pid, in a session of its own
// so it outlives this agent.
func (a *Agent) startSMBD(tools smbTools, dir, conf string, pid int) error {
	logf, err := os.OpenFile(filepath.Join(dir, "smbd.out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(tools.nsenter, "--net=/proc/"+strconv.Itoa(pid)+"/ns/net", "--", tools.smbd, "--foreground", "--no-process-group", "--configfile="+conf)
	cmd.Env = nssEnv(tools, dir)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start smbd: %w", err)
	}
	os.WriteFile(filepath.Join(dir, "run", "berth-smbd.pid"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o600)
	go cmd.Wait()
	a.log.Info("smbd started", "dir", dir, "pid", cmd.Process.Pid)
	return nil
}

// smbdPID is the pid of the share's running smbd, or 0.
func smbdPID(dir string) int {
	b, err := os.ReadFile(filepath.Join(dir, "run", "berth-smbd.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if pid <= 0 {
		return 0
	}
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil || !bytes.Contains(cmdline, []byte(filepath.Join(dir, "smb.conf"))) {
		return 0
	}
	if st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); err == nil {
		if f := strings.Fields(string(st[bytes.LastIndexByte(st, ')')+1:])); len(f) > 0 && f[0] == "Z" {
			return 0 // exited, not yet reaped
		}
	}
	return pid
}

func sameNetNS(a, b int) bool {
	x, err1 := os.Readlink("/proc/" + strconv.Itoa(a) + "/ns/net")
	y, err2 := os.Readlink("/proc/" + strconv.Itoa(b) + "/ns/net")
	return err1 == nil && err2 == nil && x == y
}

// smbReady says whether the share's smbd answers on its address.
func (a *Agent) smbReady(sh *smbShare) bool {
	if sh.addr == "" || smbdPID(a.smbDir(sh.fs)) == 0 {
		return false
	}
	c, err := net.DialTimeout("tcp", net.JoinHostPort(sh.addr, "445"), 500*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// stopShare stops smbd, removes the endpoint's namespace and unmounts the
// file system.
func (a *Agent) stopShare(ctx context.Context, sh *smbShare) {
	dir := a.smbDir(sh.fs)
	if pid := smbdPID(dir); pid > 0 {
		syscall.Kill(-pid, syscall.SIGTERM)
		for i := 0; i < 50 && smbdPID(dir) > 0; i++ {
			time.Sleep(100 * time.Millisecond)
		}
		if pid := smbdPID(dir); pid > 0 {
			syscall.Kill(-pid, syscall.SIGKILL)
		}
	}
	list, _ := a.docker.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", LabelSMB+"="+sh.fs))})
	for _, c := range list {
		if c.Labels["com.berth.smb-instance"] == a.id {
			a.docker.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true})
		}
	}
	mp := filepath.Join(dir, "share")
	if isMountpoint(mp) {
		if err := unix.Unmount(mp, 0); err != nil {
			unix.Unmount(mp, unix.MNT_DETACH)
		}
	}
	if !isMountpoint(mp) {
		os.RemoveAll(dir)
	}
	a.log.Info("stopped serving SMB share", "fs", sh.fs)
}

// writeIfChanged writes b to path unless it holds b already, and says
// whether it wrote.
func writeIfChanged(path string, b []byte) (bool, error) {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, b) {
		return false, nil
	}
	return true, os.WriteFile(path, b, 0o600)
}
