package mqtt

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/zerotouch/zerotouch/internal/provisioning"
)

// deviceConn is a device's connection as the broker sees it, with what
// the hook needs to know of it: the transport, the TLS client
// certificates, the WebSocket upgrade's headers. Closing it releases its
// place in the connection limits.
type deviceConn struct {
	net.Conn
	transport provisioning.Transport
	// certs are the TLS client certificates of a WebSocket connection
	// (the HTTPS server did the handshake); a TLS connection has its own.
	certs  []*x509.Certificate
	header http.Header
	// brokerID is the connection's ID in the broker, session the device
	// once CONNECT authenticated it (both set by the hook).
	brokerID string
	session  *session

	release func()
	once    sync.Once
}

func (c *deviceConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// peerCertificates is the chain the client presented, leaf first (the
// handshake is done once CONNECT has been read).
func (c *deviceConn) peerCertificates() []*x509.Certificate {
	if tc, ok := c.Conn.(*tls.Conn); ok {
		return tc.ConnectionState().PeerCertificates
	}
	return c.certs
}

// connCounter bounds open connections, in all and per source address.
type connCounter struct {
	mu       sync.Mutex
	total    int
	perIP    map[string]int
	max      int
	maxPerIP int
}

// acquire takes a place for a connection from addr, or says there is
// none; release gives it back.
func (c *connCounter) acquire(addr net.Addr) (release func(), ok bool) {
	ip := addr.String()
	if h, _, err := net.SplitHostPort(ip); err == nil {
		ip = h
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.total >= c.max || c.perIP[ip] >= c.maxPerIP {
		return nil, false
	}
	c.total++
	c.perIP[ip]++
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.total--
		if c.perIP[ip]--; c.perIP[ip] <= 0 {
			delete(c.perIP, ip)
		}
	}, true
}

// open is the number of open connections.
func (c *connCounter) open() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.total
}

// wsListener serves MQTT over WebSockets as an http.Handler on the HTTPS
// listener; to the broker it is a listener whose connections arrive
// through ServeHTTP.
type wsListener struct {
	srv       *Server
	establish atomic.Pointer[listeners.EstablishFn]
	upgrader  websocket.Upgrader
}

func (l *wsListener) ID() string       { return listenerWS }
func (l *wsListener) Address() string  { return WebSocketPath }
func (l *wsListener) Protocol() string { return "wss" }

func (l *wsListener) Init(*slog.Logger) error {
	l.upgrader = websocket.Upgrader{
		Subprotocols:     []string{"mqtt"},
		HandshakeTimeout: l.srv.limits.ConnectTimeout,
		// Browsers' cross-origin requests are refused (the default check);
		// devices send no Origin.
		Error: func(w http.ResponseWriter, r *http.Request, status int, reason error) {
			http.Error(w, http.StatusText(status), status)
		},
	}
	return nil
}

func (l *wsListener) Serve(establish listeners.EstablishFn) { l.establish.Store(&establish) }

// Close disconnects the WebSocket clients; the HTTPS server stops taking
// upgrades itself.
func (l *wsListener) Close(closeClients listeners.CloseFn) {
	l.establish.Store(nil)
	closeClients(listenerWS)
}

// ServeHTTP upgrades a request that offers the "mqtt" subprotocol and
// hands the connection to the broker until it ends.
func (l *wsListener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	establish := l.establish.Load()
	if establish == nil || !l.srv.accepting() {
		http.Error(w, "MQTT over WebSockets is not serving", http.StatusServiceUnavailable)
		return
	}
	if !websocket.IsWebSocketUpgrade(r) || !offersMQTT(r) {
		http.Error(w, "MQTT over WebSockets: a WebSocket upgrade with the subprotocol mqtt is required", http.StatusBadRequest)
		return
	}
	release, ok := l.srv.conns.acquire(stringAddr(r.RemoteAddr))
	if !ok {
		http.Error(w, "too many connections", http.StatusServiceUnavailable)
		return
	}
	c, err := l.upgrader.Upgrade(w, r, nil)
	if err != nil {
		release()
		return
	}
	c.SetReadLimit(int64(l.srv.limits.MaxPacketBytes) + 16)
	nc := c.NetConn()
	// The HTTP server's request deadlines still hold on the hijacked
	// connection: the CONNECT gets its own, then the broker keeps them.
	_ = nc.SetDeadline(time.Now().Add(l.srv.limits.ConnectTimeout))
	var certs []*x509.Certificate
	if r.TLS != nil {
		certs = r.TLS.PeerCertificates
	}
	dc := &deviceConn{Conn: &wsConn{Conn: nc, ws: c}, transport: provisioning.TransportMQTTWS, certs: certs,
		header: r.Header.Clone(), release: release}
	if err := (*establish)(listenerWS, dc); err != nil {
		l.srv.log.Debug("mqtt connection ended", "peer", r.RemoteAddr, "err", err)
	}
	l.srv.forget(dc)
}

// forget releases a connection the broker is done with. The broker
// forgets its clients when they disconnect, except one whose CONNACK
// could not be written (it went away at once): that one is forgotten
// here, so that connections that fail so leave nothing behind.
func (s *Server) forget(dc *deviceConn) {
	dc.Close()
	if dc.brokerID == "" {
		return
	}
	if cl, ok := s.broker.Clients.Get(dc.brokerID); ok && cl.Net.Conn == net.Conn(dc) {
		s.broker.Clients.Delete(dc.brokerID)
	}
}

func offersMQTT(r *http.Request) bool {
	for _, p := range websocket.Subprotocols(r) {
		if p == "mqtt" {
			return true
		}
	}
	return false
}

// stringAddr is an address known only as a string (an HTTP request's).
type stringAddr string

func (stringAddr) Network() string  { return "tcp" }
func (a stringAddr) String() string { return string(a) }

// errNotBinary is a WebSocket text message: MQTT travels in binary ones.
var errNotBinary = errors.New("mqtt over websockets: a message that is not binary")

// wsConn carries an MQTT byte stream in WebSocket binary messages, as
// MQTT over WebSockets does: a packet may span messages and a message may
// hold several packets. Deadlines and Close act on the connection under
// it. Writes are serialized by the broker (one per packet).
type wsConn struct {
	net.Conn
	ws *websocket.Conn
	r  io.Reader // the message being read, if any
}

func (c *wsConn) Read(p []byte) (int, error) {
	for {
		if c.r == nil {
			kind, r, err := c.ws.NextReader()
			if err != nil {
				return 0, err
			}
			if kind != websocket.BinaryMessage {
				return 0, errNotBinary
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if errors.Is(err, io.EOF) {
			c.r = nil
			if n == 0 {
				continue // an empty or finished message: read the next
			}
			err = nil
		}
		return n, err
	}
}

func (c *wsConn) Write(p []byte) (int, error) {
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}
