package loggen

import (
	"fmt"
	"io"
	"time"
)

// SSHDHostileRatio is the share of lines SSHD aims to give hostile sources.
const SSHDHostileRatio = 0.11

var (
	sshHosts    = []string{"sd-126005", "web-01", "bastion"}
	sshUsers    = []string{"deploy", "alice", "bob", "carol", "ansible", "backup", "git", "dave", "erin", "ubuntu"}
	enumUsers   = []string{"admin", "test", "user", "oracle", "postgres", "ftpuser", "guest", "pi", "hadoop", "ubnt", "support", "git", "jenkins", "minecraft", "teamspeak", "steam", "mysql", "nagios", "tomcat", "www", "demo", "operator", "server", "student", "ts3", "vagrant", "docker", "user1", "test1", "admin1", "dev", "web", "testuser", "sysadmin", "info", "ftp", "mail", "anonymous", "zabbix", "odoo"}
	bfUsers     = []string{"root", "root", "root", "admin", "ubuntu"}
	cronCmds    = []string{"cd / && run-parts --report /etc/cron.hourly", "/usr/lib/php/sessionclean", "test -x /usr/sbin/anacron || { cd / && run-parts --report /etc/cron.daily; }", "/usr/local/bin/backup.sh >/dev/null 2>&1", "command -v debian-sa1 > /dev/null && debian-sa1 1 1"}
	sudoCmds    = []string{"/usr/bin/systemctl status nginx", "/usr/bin/journalctl -u sshd", "/usr/bin/apt-get update", "/usr/bin/docker ps", "/bin/cat /var/log/auth.log"}
	sshKeyTypes = []string{"RSA", "ED25519", "ECDSA"}
)

const b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

func (g *gen) fingerprint() string {
	b := make([]byte, 43)
	for i := range b {
		b[i] = b64[g.r.IntN(len(b64))]
	}
	return string(b)
}

// ssh campaign kinds
const (
	sshBF = iota
	sshEnum
	sshSlowBF
	sshRefused
	sshPreauth
)

// SSHD writes n syslog lines of an sshd host (sshd, CRON, pam, sudo,
// systemd-logind) with about 11% of lines from a few hundred attacking
// addresses: fast brute force, user enumeration, slow brute force,
// refused connections and preauth disconnect storms. Timestamps increase
// (about 20 lines per second) from Start.
func SSHD(w io.Writer, n int, seed int64) error {
	_, err := SSHDCount(w, n, seed)
	return err
}

// SSHDCount is SSHD and also returns how many lines were hostile.
func SSHDCount(w io.Writer, n int, seed int64) (hostile int, err error) {
	g := newGen(w, seed, 0x55d, 50*time.Millisecond)
	attackers := ipPool(g.r, sshdAttackers)
	benign := ipPool(g.r, 4000)
	host := sshHosts[g.r.IntN(len(sshHosts))]
	pid := 1000 + g.r.IntN(5000)
	nextPid := func() int { pid += 1 + g.r.IntN(40); return pid }
	sess := 1
	var pending []string // benign lines queued by an episode
	camps := make([]*campaign, 20)
	newCamp := func() *campaign {
		c := &campaign{ip: attackers[g.r.IntN(len(attackers))], pid: nextPid(), port: 30000 + g.r.IntN(35000), user: g.pick(bfUsers)}
		switch k := g.r.IntN(100); {
		case k < 35:
			c.kind, c.left, c.gapMin, c.gapMax = sshBF, 8+g.r.IntN(40), 300*time.Millisecond, 3*time.Second
		case k < 60:
			c.kind, c.left, c.gapMin, c.gapMax = sshEnum, 8+g.r.IntN(30), 500*time.Millisecond, 4*time.Second
		case k < 75:
			c.kind, c.left, c.gapMin, c.gapMax = sshSlowBF, 12+g.r.IntN(20), 20*time.Second, 50*time.Second
		case k < 88:
			c.kind, c.left, c.gapMin, c.gapMax = sshRefused, 1+g.r.IntN(6), 2*time.Second, 20*time.Second
		default:
			c.kind, c.left, c.gapMin, c.gapMax = sshPreauth, 5+g.r.IntN(20), time.Second, 5*time.Second
		}
		c.next = g.now
		return c
	}
	for i := range camps {
		camps[i] = newCamp()
	}
	for i := 0; i < n; i++ {
		g.tick()
		ts := g.now.Format(time.Stamp)
		prefix := ts + " " + host + " "
		var line string
		if g.r.Float64() < SSHDHostileRatio {
			if c := g.due(camps); c != nil {
				line = prefix + g.sshHostile(c, nextPid)
				g.hostile++
				c.left--
				if c.left <= 0 {
					for j := range camps {
						if camps[j] == c {
							camps[j] = newCamp()
						}
					}
				} else {
					g.reschedule(c)
				}
			}
		}
		if line == "" {
			if len(pending) == 0 {
				pending = g.sshBenignEpisode(benign, nextPid, &sess)
			}
			line = prefix + pending[0]
			pending = pending[1:]
		}
		if _, err := g.w.WriteString(line + "\n"); err != nil {
			return g.hostile, err
		}
	}
	return g.hostile, g.w.Flush()
}

func (g *gen) sshHostile(c *campaign, nextPid func() int) string {
	port := c.port + c.step
	c.step++
	switch c.kind {
	case sshBF, sshSlowBF:
		if c.step%4 == 1 {
			return fmt.Sprintf("sshd[%d]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=%s  user=%s", c.pid, c.ip, c.user)
		}
		if g.r.IntN(6) == 0 {
			c.pid = nextPid()
		}
		if c.user == "root" {
			return fmt.Sprintf("sshd[%d]: Failed password for root from %s port %d ssh2", c.pid, c.ip, port)
		}
		return fmt.Sprintf("sshd[%d]: Failed password for invalid user %s from %s port %d ssh2", c.pid, c.user, c.ip, port)
	case sshEnum:
		u := g.pick(enumUsers)
		c.pid = nextPid()
		if g.r.IntN(3) == 0 {
			return fmt.Sprintf("sshd[%d]: Connection closed by invalid user %s %s port %d [preauth]", c.pid, u, c.ip, port)
		}
		return fmt.Sprintf("sshd[%d]: Invalid user %s from %s port %d", c.pid, u, c.ip, port)
	case sshRefused:
		return fmt.Sprintf("sshd[%d]: refused connect from %s (%s)", nextPid(), c.ip, c.ip)
	default:
		c.pid = nextPid()
		if g.r.IntN(2) == 0 {
			return fmt.Sprintf("sshd[%d]: Disconnected from authenticating user %s %s port %d [preauth]", c.pid, c.user, c.ip, port)
		}
		return fmt.Sprintf("sshd[%d]: Connection closed by authenticating user %s %s port %d [preauth]", c.pid, c.user, c.ip, port)
	}
}

// sshBenignEpisode returns the lines of one ordinary event: a cron job, a
// login session, a sudo, a port check.
func (g *gen) sshBenignEpisode(benign []string, nextPid func() int, sess *int) []string {
	switch k := g.r.IntN(100); {
	case k < 40:
		p := nextPid()
		return []string{
			fmt.Sprintf("CRON[%d]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)", p),
			fmt.Sprintf("CRON[%d]: (root) CMD (%s)", p+1, g.pick(cronCmds)),
			fmt.Sprintf("CRON[%d]: pam_unix(cron:session): session closed for user root", p),
		}
	case k < 85:
		p := nextPid()
		ip := benign[g.r.IntN(len(benign))]
		u := g.pick(sshUsers)
		port := 32768 + g.r.IntN(28000)
		*sess++
		var out []string
		if g.r.IntN(10) == 0 { // a typo first
			out = append(out, fmt.Sprintf("sshd[%d]: Failed password for %s from %s port %d ssh2", p, u, ip, port))
		}
		if g.r.IntN(3) == 0 {
			out = append(out, fmt.Sprintf("sshd[%d]: Accepted password for %s from %s port %d ssh2", p, u, ip, port))
		} else {
			out = append(out, fmt.Sprintf("sshd[%d]: Accepted publickey for %s from %s port %d ssh2: %s SHA256:%s", p, u, ip, port, g.pick(sshKeyTypes), g.fingerprint()))
		}
		out = append(out,
			fmt.Sprintf("sshd[%d]: pam_unix(sshd:session): session opened for user %s(uid=%d) by (uid=0)", p, u, 1000+len(u)),
			fmt.Sprintf("systemd-logind[612]: New session %d of user %s.", *sess, u))
		if g.r.IntN(4) == 0 {
			out = append(out, fmt.Sprintf("sudo:   %s : TTY=pts/%d ; PWD=/home/%s ; USER=root ; COMMAND=%s", u, g.r.IntN(4), u, g.pick(sudoCmds)),
				"sudo: pam_unix(sudo:session): session opened for user root(uid=0) by "+u+"(uid=1000)",
				"sudo: pam_unix(sudo:session): session closed for user root")
		}
		return append(out,
			fmt.Sprintf("sshd[%d]: Received disconnect from %s port %d:11: disconnected by user", p, ip, port),
			fmt.Sprintf("sshd[%d]: Disconnected from user %s %s port %d", p, u, ip, port),
			fmt.Sprintf("sshd[%d]: pam_unix(sshd:session): session closed for user %s", p, u),
			fmt.Sprintf("systemd-logind[612]: Session %d logged out. Waiting for processes to exit.", *sess),
			fmt.Sprintf("systemd-logind[612]: Removed session %d.", *sess))
	case k < 95:
		return []string{
			fmt.Sprintf("systemd[1]: Starting %s...", g.pick([]string{"Daily apt download activities", "Cleanup of Temporary Directories", "Rotate log files", "Message of the Day"})),
			"systemd[1]: Finished " + g.pick([]string{"logrotate.service - Rotate log files.", "motd-news.service - Message of the Day.", "apt-daily.service - Daily apt download activities."}),
		}
	default:
		ip := benign[g.r.IntN(len(benign))]
		return []string{fmt.Sprintf("sshd[%d]: Connection closed by %s port %d [preauth]", nextPid(), ip, 32768+g.r.IntN(28000))}
	}
}
