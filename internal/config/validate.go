package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/zerotouch/zerotouch/allocation"
)

// Validate reports every problem of c at once.
func (c *Config) Validate() error {
	var p []error
	if c.DataDir == "" {
		p = append(p, errors.New("data_dir is required"))
	}
	addrs := map[string]string{"listen.grpc": c.Listen.GRPC, "listen.http": c.Listen.HTTP}
	if c.Listen.MQTT != "" {
		addrs["listen.mqtt"] = c.Listen.MQTT
	}
	if c.Listen.Metrics != "" {
		addrs["listen.metrics"] = c.Listen.Metrics
	}
	for name, addr := range addrs {
		if _, port, err := net.SplitHostPort(addr); err != nil {
			p = append(p, fmt.Errorf("%s %q is not host:port: %v", name, addr, err))
		} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			p = append(p, fmt.Errorf("%s %q has an invalid port", name, addr))
		}
	}
	if c.Listen.GRPC == c.Listen.HTTP && c.Listen.GRPC != "" && !hasZeroPort(c.Listen.GRPC) {
		p = append(p, fmt.Errorf("listen.grpc and listen.http are both %q; they need separate addresses", c.Listen.GRPC))
	}
	for name, other := range map[string]string{"listen.grpc": c.Listen.GRPC, "listen.http": c.Listen.HTTP} {
		if c.Listen.MQTT != "" && c.Listen.MQTT == other && !hasZeroPort(other) {
			p = append(p, fmt.Errorf("listen.mqtt and %s are both %q; they need separate addresses", name, other))
		}
	}
	for name, other := range map[string]string{"listen.grpc": c.Listen.GRPC, "listen.http": c.Listen.HTTP, "listen.mqtt": c.Listen.MQTT} {
		if c.Listen.Metrics != "" && c.Listen.Metrics == other && !hasZeroPort(other) {
			p = append(p, fmt.Errorf("listen.metrics and %s are both %q; metrics need an address of their own", name, other))
		}
	}
	p = append(p, c.MQTT.validate()...)
	switch {
	case (c.TLS.CertFile == "") != (c.TLS.KeyFile == ""):
		p = append(p, errors.New("tls.cert_file and tls.key_file must be given together"))
	case c.TLS.CertFile == "" && !c.Dev:
		p = append(p, errors.New("tls.cert_file and tls.key_file are required (or run with --dev to generate a development PKI)"))
	case c.TLS.CertFile != "":
		for _, f := range []string{c.TLS.CertFile, c.TLS.KeyFile} {
			if _, err := os.Stat(f); err != nil {
				p = append(p, fmt.Errorf("tls: %v", err))
			}
		}
	}
	switch c.Storage.Backend {
	case "embedded":
	case "redis":
		p = append(p, c.Storage.Redis.validate()...)
	default:
		p = append(p, fmt.Errorf("storage.backend %q is not one of embedded, redis", c.Storage.Backend))
	}
	p = append(p, c.Geo.validate()...)
	if _, err := c.IPFilterProxies(); err != nil {
		p = append(p, err)
	}
	if r := c.FailedAttempts.Retention; r < time.Hour || r > 90*24*time.Hour {
		p = append(p, fmt.Errorf("failed_attempts.retention %s is outside 1h-90 days", r))
	}
	if r := c.Audit.Retention; r != 0 && (r < 24*time.Hour || r > 100*365*24*time.Hour) {
		p = append(p, fmt.Errorf("audit.retention %s is outside 24h-100 years (0 keeps records forever)", r))
	}
	if c.Hubs.EventRetention < 100 || c.Hubs.EventRetention > 100_000_000 {
		p = append(p, fmt.Errorf("hubs.event_retention %d is outside 100-100000000", c.Hubs.EventRetention))
	}
	if c.Hubs.MaxStreams < 1 || c.Hubs.MaxStreams > 1000 {
		p = append(p, fmt.Errorf("hubs.max_streams %d is outside 1-1000", c.Hubs.MaxStreams))
	}
	if c.Hubs.PollInterval < 10*time.Millisecond || c.Hubs.PollInterval > 10*time.Second {
		p = append(p, fmt.Errorf("hubs.poll_interval %s is outside 10ms-10s", c.Hubs.PollInterval))
	}
	if c.Webhooks.SyncBudget < 0 || c.Webhooks.SyncBudget > 30*time.Second {
		p = append(p, fmt.Errorf("webhooks.sync_budget %s is outside 0-30s", c.Webhooks.SyncBudget))
	}
	if f := c.Webhooks.CAFile; f != "" {
		if _, err := os.Stat(f); err != nil {
			p = append(p, fmt.Errorf("webhooks.ca_file: %v", err))
		}
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		p = append(p, fmt.Errorf("log.level %q is not one of debug, info, warn, error", c.Log.Level))
	}
	switch c.Log.Format {
	case "text", "json", "":
	default:
		p = append(p, fmt.Errorf("log.format %q is not one of text, json", c.Log.Format))
	}
	if c.X509.MaxChainLength < 1 || c.X509.MaxChainLength > 10 {
		p = append(p, fmt.Errorf("x509.max_chain_length %d is outside 1-10", c.X509.MaxChainLength))
	}
	for name, r := range map[string]RateRule{"per_ip": c.Device.RateLimit.PerIP, "per_registration": c.Device.RateLimit.PerRegistration,
		"tpm_challenges_per_ip": c.Device.RateLimit.TPMChallengesPerIP} {
		if r.Limit < 0 || r.Limit > 0 && (r.Window < time.Second || r.Window > 24*time.Hour) {
			p = append(p, fmt.Errorf("device.rate_limit.%s: limit %d per %s; want a limit >= 0 and a window of 1s-24h", name, r.Limit, r.Window))
		}
	}
	if sc := c.DPS.IDScope; sc != "" {
		reserved := map[string]bool{"v1": true, "healthz": true, "readyz": true, "enrollments": true, "enrollmentgroups": true, "registrations": true, "pki": true}
		ok := len(sc) <= 32 && !reserved[strings.ToLower(sc)]
		for i := 0; i < len(sc); i++ {
			if ch := sc[i]; !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9') {
				ok = false
			}
		}
		if !ok {
			p = append(p, fmt.Errorf("dps.id_scope %q must be 1-32 letters and digits", sc))
		}
		if c.Console.Enabled && strings.EqualFold(sc, "console") {
			p = append(p, errors.New(`dps.id_scope "console" would shadow the web console's /console/ path; choose another scope or set console.enabled: false`))
		}
	}
	if u := c.Issuance.PublicURL; u != "" {
		pu, err := url.Parse(u)
		if err != nil || (pu.Scheme != "https" && pu.Scheme != "http") || pu.Host == "" || strings.Trim(pu.Path, "/") != "" || pu.RawQuery != "" || pu.Fragment != "" || pu.User != nil {
			p = append(p, fmt.Errorf("issuance.public_url %q must be http(s)://host[:port] with no path, query or user", u))
		}
	}
	if h := c.DPS.ServiceHostname; h != "" {
		if err := allocation.ValidateHostname(h); err != nil {
			p = append(p, fmt.Errorf("dps.service_hostname: %v", err))
		}
	}
	if c.Storage.Backend == "redis" && c.Secrets.DataKeyFile == "" && !c.Dev {
		p = append(p, errors.New("secrets.data_key_file is required with the redis backend: every replica must seal with the same data key"))
	}
	if a := c.Debug.PprofListen; a != "" {
		host, _, err := net.SplitHostPort(a)
		if ip := net.ParseIP(host); err != nil || (host != "localhost" && (ip == nil || !ip.IsLoopback())) {
			p = append(p, fmt.Errorf("debug.pprof_listen %q must be a loopback host:port", a))
		}
	}
	if r := c.Revocation.FetchTimeout; r < 100*time.Millisecond || r > time.Minute {
		p = append(p, fmt.Errorf("revocation.fetch_timeout %s is outside 100ms-1m", r))
	}
	if r := c.Revocation.RefreshInterval; r < time.Minute || r > 24*time.Hour {
		p = append(p, fmt.Errorf("revocation.refresh_interval %s is outside 1m-24h", r))
	}
	if c.ShutdownGrace <= 0 || c.ShutdownGrace > 10*time.Minute {
		p = append(p, fmt.Errorf("shutdown_grace %s is outside (0, 10m]", c.ShutdownGrace))
	}
	return errors.Join(p...)
}

// IPFilterProxies parses ip_filter.trusted_proxies (CIDR prefixes or
// single addresses).
func (c *Config) IPFilterProxies() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range c.IPFilter.TrustedProxies {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("ip_filter.trusted_proxies: %q is not a CIDR prefix or an address", s)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}
