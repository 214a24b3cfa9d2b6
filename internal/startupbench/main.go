// Command startupbench measures the daemon's start: cmd/crowdsec with its
// local API (SQLite) and an agent that loads every item of a hub folder at
// once (each collection, parser, postoverflow and scenario of its index,
// installed into a temporary configuration folder as `cscli ... install`
// does). The figure is the time from exec to ready, ready meaning what
// systemd waits for with the packaged unit (Type=notify): READY=1 on
// NOTIFY_SOCKET, which the daemon sends once the LAPI listens, after the
// agent has loaded its rules. /health is then checked to answer. At ready
// it reads the process's CPU time and RSS (VmRSS, and VmHWM, the peak of
// the load), and from the daemon's log the loader's own figures and every
// item it could not load (skip_broken_rules is set so that all of them are
// listed; any is an error of the benchmark).
//
//	go run ./internal/startupbench -bin build/bin -hub ../shared/hub-corpus -runs 5
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	log "github.com/sirupsen/logrus"
	"golang.org/x/crypto/bcrypt"

	"github.com/rampart-ips/rampart/agent/hub"
	"github.com/rampart-ips/rampart/csconfig"
	"github.com/rampart-ips/rampart/internal/loopback"
	"github.com/rampart-ips/rampart/internal/procstat"
	"github.com/rampart-ips/rampart/lapi/store"
)

func main() {
	bin := flag.String("bin", "build/bin", "folder of the crowdsec binary")
	hubDir := flag.String("hub", "../shared/hub-corpus", "hub folder whose every item is loaded")
	runs := flag.Int("runs", 5, "starts to measure (the median is reported)")
	keep := flag.Bool("keep", false, "keep the temporary folder (configuration, logs)")
	flag.Parse()
	// the store's own lines (creating the database) are not figures
	log.SetLevel(log.WarnLevel)
	if err := run(*bin, *hubDir, *runs, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "startupbench:", err)
		os.Exit(1)
	}
}

// sample is one start's figures.
type sample struct {
	ready     time.Duration
	cpu       time.Duration // user + system at ready
	rss, peak int64         // kB at ready
	loaded    map[string]string
	skipped   []string
}

func run(bin, hubDir string, runs int, keep bool) error {
	if runs < 1 {
		return errors.New("-runs must be at least 1")
	}
	bin, err := filepath.Abs(filepath.Join(bin, "crowdsec"))
	if err != nil {
		return err
	}
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("%w (make build first)", err)
	}
	dir, err := os.MkdirTemp("", "startupbench-")
	if err != nil {
		return err
	}
	if keep {
		fmt.Println("startupbench: keeping", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	e, installed, err := prepare(dir, hubDir)
	if err != nil {
		return err
	}
	fmt.Printf("startupbench: %s, every item installed: %s\n", hubDir, installed)
	var all []sample
	for i := range runs {
		s, err := e.start(bin, i)
		if err != nil {
			return err
		}
		fmt.Printf("  run %d: ready in %s, CPU %s, RSS %.1f MB (peak %.1f MB); loader: %s\n", i+1, s.ready.Round(time.Millisecond),
			s.cpu.Round(10*time.Millisecond), float64(s.rss)/1024, float64(s.peak)/1024, fields(s.loaded))
		all = append(all, s)
	}
	last := all[len(all)-1]
	if len(last.skipped) > 0 {
		fmt.Printf("  %d items failed to load:\n", len(last.skipped))
		for _, s := range last.skipped {
			fmt.Println("    " + s)
		}
	}
	med := func(f func(sample) float64) float64 {
		v := make([]float64, len(all))
		for i, s := range all {
			v[i] = f(s)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	fmt.Printf("startupbench: median of %d: ready %.3f s, CPU %.2f s, RSS %.1f MB, peak RSS %.1f MB; %d CPUs, load average %s\n",
		len(all), med(func(s sample) float64 { return s.ready.Seconds() }), med(func(s sample) float64 { return s.cpu.Seconds() }),
		med(func(s sample) float64 { return float64(s.rss) / 1024 }), med(func(s sample) float64 { return float64(s.peak) / 1024 }),
		runtime.NumCPU(), loadAvg())
	if len(last.skipped) > 0 {
		return fmt.Errorf("%d items failed to load (listed above)", len(last.skipped))
	}
	return nil
}

// env is a prepared configuration.
type env struct {
	dir, cfg, url string
}

// prepare installs every item of hubDir into a configuration folder under
// dir and writes a configuration whose LAPI has a machine for the agent.
// It returns how many items of each kind it installed.
func prepare(dir, hubDir string) (*env, string, error) {
	hubDir, err := filepath.Abs(hubDir)
	if err != nil {
		return nil, "", err
	}
	h, err := hub.OpenHub(hubDir)
	if err != nil {
		return nil, "", err
	}
	etc := filepath.Join(dir, "etc")
	in := &hub.Installer{Hub: h, ConfigDir: etc}
	var counts []string
	for _, kind := range hub.Kinds {
		names := h.Items(kind)
		for _, name := range names {
			if _, err := in.Install(kind, name); err != nil {
				return nil, "", fmt.Errorf("installing %s %s: %w", kind, name, err)
			}
		}
		counts = append(counts, fmt.Sprintf("%d %s", len(names), kind))
	}
	acquis := filepath.Join(dir, "acquis.d")
	if err := os.MkdirAll(acquis, 0o755); err != nil {
		return nil, "", err
	}
	lapiAddr, err := loopback.FreeAddr()
	if err != nil {
		return nil, "", err
	}
	metricsAddr, err := loopback.FreeAddr()
	if err != nil {
		return nil, "", err
	}
	_, metricsPort, _ := net.SplitHostPort(metricsAddr)
	e := &env{dir: dir, cfg: filepath.Join(dir, "config.toml"), url: "http://" + lapiAddr + "/"}
	data := filepath.Join(dir, "data")
	conf := fmt.Sprintf(`[common]
log_media = "stdout"
log_level = "info"
[config_paths]
config_dir = %q
data_dir = %q
hub_dir = %q
simulation_path = %q
[crowdsec_service]
acquisition_dir = %q
collections = []
# every broken item is listed in the log rather than the first stopping the start
skip_broken_rules = true
state_dir = %q
alert_queue_dir = %q
[db_config]
db_path = %q
[api.client]
credentials_path = %q
[api.server]
listen_uri = %q
profiles_path = %q
[prometheus]
listen_addr = "127.0.0.1"
listen_port = %s
`, etc, data, hubDir, filepath.Join(etc, "simulation.toml"), acquis, filepath.Join(data, "acquisition"),
		filepath.Join(data, "alert-queue"), filepath.Join(data, "crowdsec.db"), filepath.Join(dir, "creds.toml"),
		lapiAddr, filepath.Join(dir, "profiles.toml"), metricsPort)
	if err := os.MkdirAll(data, 0o755); err != nil {
		return nil, "", err
	}
	if err := os.WriteFile(e.cfg, []byte(conf), 0o600); err != nil {
		return nil, "", err
	}
	prof, err := os.ReadFile("config/profiles.toml")
	if err != nil {
		return nil, "", fmt.Errorf("run from the repository root: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "profiles.toml"), prof, 0o600); err != nil {
		return nil, "", err
	}
	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{Path: filepath.Join(data, "crowdsec.db")})
	if err != nil {
		return nil, "", err
	}
	defer st.Close()
	hash, err := bcrypt.GenerateFromPassword([]byte("benchpassword"), bcrypt.MinCost)
	if err != nil {
		return nil, "", err
	}
	if err := st.CreateMachine(ctx, store.Machine{MachineID: "bench", PasswordHash: string(hash), IsValidated: true}, true); err != nil {
		return nil, "", err
	}
	if err := csconfig.WriteCredentials(filepath.Join(dir, "creds.toml"),
		&csconfig.Credentials{URL: e.url, Login: "bench", Password: "benchpassword"}); err != nil {
		return nil, "", err
	}
	return e, strings.Join(counts, ", "), nil
}

// start runs the daemon once until ready, takes its figures and stops it.
func (e *env) start(bin string, i int) (sample, error) {
	var s sample
	sock := filepath.Join(e.dir, "notify.sock")
	_ = os.Remove(sock)
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		return s, err
	}
	defer conn.Close()
	logPath := filepath.Join(e.dir, fmt.Sprintf("crowdsec-%d.log", i+1))
	logf, err := os.Create(logPath)
	if err != nil {
		return s, err
	}
	defer logf.Close()
	cmd := exec.Command(bin, "-c", e.cfg)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock)
	cmd.Stdout, cmd.Stderr = logf, logf
	begin := time.Now()
	if err := cmd.Start(); err != nil {
		return s, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	ready := make(chan error, 1)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				ready <- err
				return
			}
			if slices.Contains(strings.Split(string(buf[:n]), "\n"), "READY=1") {
				ready <- nil
				return
			}
		}
	}()
	select {
	case err := <-ready:
		if err != nil {
			stop()
			return s, err
		}
		s.ready = time.Since(begin)
	case err := <-exited:
		return s, fmt.Errorf("crowdsec exited before ready (%v); see %s", err, logPath)
	case <-time.After(2 * time.Minute):
		stop()
		return s, fmt.Errorf("crowdsec not ready after 2 minutes; see %s", logPath)
	}
	pid := cmd.Process.Pid
	s.cpu, s.rss, s.peak = procstat.CPU(pid), procstat.KB(pid, "VmRSS"), procstat.KB(pid, "VmHWM")
	resp, err := http.Get(e.url + "health")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("status %s", resp.Status)
		}
	}
	stop()
	if err != nil {
		return s, fmt.Errorf("/health after READY=1: %w", err)
	}
	s.loaded, s.skipped, err = readLog(logPath)
	return s, err
}

var logField = regexp.MustCompile(`(\w+)=("(?:[^"\\]|\\.)*"|\S+)`)

// readLog returns the fields of the daemon's "rules loaded" line and the
// "rule skipped" lines.
func readLog(path string) (loaded map[string]string, skipped []string, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		m := map[string]string{}
		for _, kv := range logField.FindAllStringSubmatch(line, -1) {
			v := kv[2]
			if u, err := strconv.Unquote(v); err == nil {
				v = u
			}
			m[kv[1]] = v
		}
		switch m["msg"] {
		case "rules loaded":
			loaded = m
		case "rule skipped":
			skipped = append(skipped, m["error"])
		}
	}
	if loaded == nil {
		return nil, nil, fmt.Errorf("no \"rules loaded\" line in %s", path)
	}
	return loaded, skipped, sc.Err()
}

// fields lists the loader's figures of its "rules loaded" line.
func fields(m map[string]string) string {
	var out []string
	for k, v := range m {
		if k != "time" && k != "level" && k != "msg" && k != "component" {
			out = append(out, k+"="+v)
		}
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}

func loadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(data))[:3], " ")
}
