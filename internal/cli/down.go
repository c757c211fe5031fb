package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-project/berth/internal/agent"
)

// upState is what a running `berth up` leaves in its data dir for
// `berth down`.
type upState struct {
	PID      int    `json:"pid"`
	Endpoint string `json:"endpoint"`
}

func upStatePath(dataDir string) string { return filepath.Join(dataDir, "up.json") }

// claimUp records this `berth up` in dataDir, refusing when another one
// runs there.
func claimUp(dataDir, endpoint string) (func(), error) {
	p := upStatePath(dataDir)
	if b, err := os.ReadFile(p); err == nil {
		var st upState
		if json.Unmarshal(b, &st) == nil && st.PID > 0 && st.PID != os.Getpid() && alive(st.PID) {
			return nil, fmt.Errorf("berth up already runs on %s (pid %d, %s): berth down stops it", dataDir, st.PID, st.Endpoint)
		}
	}
	b, _ := json.Marshal(upState{PID: os.Getpid(), Endpoint: endpoint})
	if err := os.WriteFile(p, b, 0o600); err != nil {
		return nil, err
	}
	return func() { os.Remove(p) }, nil
}

func downCmd() *cobra.Command {
	var dataDir string
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "down",
		Short: "Stop what `berth up` started (its servers, etcd and local agent); say what it leaves",
		Long: `Stop the berth up running on --data-dir, as Ctrl-C in its terminal does:
its servers, embedded etcd and local agent stop; its state stays in the data
dir for the next berth up. Task containers keep running (the next berth up
adopts them), and Docker volumes and block volume images stay: berth down
lists them. Stop tasks first (berth stop, or scale services to 0) to leave
nothing running.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			w := cmd.OutOrStdout()
			b, err := os.ReadFile(upStatePath(dataDir))
			if errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("no berth up runs on %s", dataDir)
			} else if err != nil {
				return err
			}
			var st upState
			if err := json.Unmarshal(b, &st); err != nil || st.PID <= 0 {
				return fmt.Errorf("%s is unreadable: remove it if no berth up runs", upStatePath(dataDir))
			}
			if err := syscall.Kill(st.PID, syscall.SIGTERM); errors.Is(err, syscall.ESRCH) {
				os.Remove(upStatePath(dataDir))
				fmt.Fprintf(w, "berth up (pid %d) was not running.\n", st.PID)
			} else if err != nil {
				return fmt.Errorf("stop berth up (pid %d): %w", st.PID, err)
			} else {
				deadline := time.Now().Add(wait)
				for alive(st.PID) {
					if time.Now().After(deadline) {
						return fmt.Errorf("berth up (pid %d) still runs after %s", st.PID, wait)
					}
					time.Sleep(100 * time.Millisecond)
				}
				fmt.Fprintf(w, "Stopped berth up (pid %d, %s). Its state stays in %s.\n", st.PID, st.Endpoint, dataDir)
			}
			left := func(args ...string) []string {
				out, _ := exec.Command("docker", args...).Output()
				return strings.Fields(string(out))
			}
			if cs := left("ps", "--filter", "label="+agent.LabelInstance, "--format", "{{.Names}}"); len(cs) > 0 {
				fmt.Fprintf(w, "Left running on this Docker Engine (the next berth up adopts its own): %d task containers:\n  %s\n  remove them with: docker rm -f $(docker ps -q --filter label=%s)\n",
					len(cs), strings.Join(cs, "\n  "), agent.LabelInstance)
			}
			if vs := left("volume", "ls", "--filter", "label="+agent.LabelInstance, "--format", "{{.Name}}"); len(vs) > 0 {
				fmt.Fprintf(w, "Left on this Docker Engine: %d Docker volumes of tasks: %s\n", len(vs), strings.Join(vs, " "))
			}
			if imgs, _ := filepath.Glob(filepath.Join(dataDir, "agent", "volumes", "*.img")); len(imgs) > 0 {
				fmt.Fprintf(w, "Left: %d block volume images in %s\n", len(imgs), filepath.Join(dataDir, "agent", "volumes"))
			}
			return nil
		},
	}
	home, _ := os.UserHomeDir()
	cmd.Flags().StringVar(&dataDir, "data-dir", filepath.Join(home, ".berth"), "the data dir berth up runs on")
	cmd.Flags().DurationVar(&wait, "wait", time.Minute, "how long to wait for berth up to stop")
	return cmd
}

// alive reports whether a process runs: it exists and is not a zombie
// (exited, its parent yet to reap it).
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// pid (comm) STATE …: comm may hold spaces and parentheses.
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}
