package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// ErrBadOrigin marks a string that is not a web origin
// (scheme://host[:port]).
var ErrBadOrigin = errors.New("httpapi: not an origin")

// PreflightMaxAge is the Access-Control-Max-Age of a preflight answer, in
// seconds: how long a browser may cache it.
const PreflightMaxAge = 600

// Methods and request headers a preflight answer allows.
const (
	allowMethods = "GET, POST, PUT, DELETE"
	allowHeaders = "Content-Type, Authorization"
)

// loopbackNames are the Host names accepted, with the port, on a connection
// that arrived on a loopback address.
var loopbackNames = []string{"localhost", "127.0.0.1", "::1"}

// hostPort is a normalized Host: lower-case name or IP (no brackets) and a
// port (80 when the header names none).
type hostPort struct{ host, port string }

// parseHost parses a Host header value ("name:port", "[v6]:port", or a
// name alone, meaning port defPort).
func parseHost(s, defPort string) (hostPort, bool) {
	if s == "" {
		return hostPort{}, false
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		// No port: a bare name, or a bracketed IPv6 address.
		host, port = s, defPort
		if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
			host = host[1 : len(host)-1]
		}
	}
	if host == "" || strings.ContainsAny(host, "[]/@ ") {
		return hostPort{}, false
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
		return hostPort{}, false
	}
	return hostPort{strings.ToLower(host), port}, true
}

// ParseOrigin checks that s is a web origin, http:// or https:// followed by
// a host and an optional port (a trailing "/" is tolerated), and returns it
// in the form browsers send in an Origin header: lower-case, without the
// scheme's default port. "null" is not an origin.
func ParseOrigin(s string) (string, error) {
	scheme, hp, err := splitOrigin(s)
	if err != nil {
		return "", err
	}
	return joinOrigin(scheme, hp), nil
}

func splitOrigin(s string) (string, hostPort, error) {
	u, err := url.Parse(s)
	if err != nil {
		return "", hostPort{}, fmt.Errorf("%w: %q: %v", ErrBadOrigin, s, err)
	}
	scheme := strings.ToLower(u.Scheme)
	defPort := map[string]string{"http": "80", "https": "443"}[scheme]
	if defPort == "" || u.Opaque != "" || u.User != nil || (u.Path != "" && u.Path != "/") ||
		u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return "", hostPort{}, fmt.Errorf("%w: %q: want http:// or https://, a host and an optional port, nothing else", ErrBadOrigin, s)
	}
	hp, ok := parseHost(u.Host, defPort)
	if !ok {
		return "", hostPort{}, fmt.Errorf("%w: %q: bad host or port", ErrBadOrigin, s)
	}
	return scheme, hp, nil
}

func joinOrigin(scheme string, hp hostPort) string {
	host := hp.host
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if (scheme == "http" && hp.port == "80") || (scheme == "https" && hp.port == "443") {
		return scheme + "://" + host
	}
	return scheme + "://" + host + ":" + hp.port
}

// access holds the parsed access options of an API.
type access struct {
	origins map[string]bool   // extra allowed origins, normalized
	hosts   map[hostPort]bool // extra accepted Host values
	token   *[sha256.Size]byte
}

func newAccess(opts Options) access {
	ac := access{origins: map[string]bool{}, hosts: map[hostPort]bool{}}
	for _, o := range opts.Origins {
		if n, err := ParseOrigin(o); err == nil {
			ac.origins[n] = true
		}
	}
	for _, h := range opts.Hosts {
		if hp, ok := parseHost(h, "80"); ok {
			ac.hosts[hp] = true
		}
	}
	if opts.Token != "" {
		sum := sha256.Sum256([]byte(opts.Token))
		ac.token = &sum
	}
	return ac
}

// hostAccepted reports whether hp names this API for request r: one of
// Options.Hosts, or the local address the connection arrived on (with the
// loopback names when that address is a loopback one).
func (ac *access) hostAccepted(r *http.Request, hp hostPort) bool {
	if ac.hosts[hp] {
		return true
	}
	la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok {
		return false
	}
	tcp, ok := la.(*net.TCPAddr)
	if !ok || tcp.Zone != "" || hp.port != strconv.Itoa(tcp.Port) {
		return false
	}
	if hp.host == tcp.IP.String() {
		return true
	}
	if tcp.IP.IsLoopback() {
		for _, n := range loopbackNames {
			if hp.host == n {
				return true
			}
		}
	}
	return false
}

// originAllowed reports whether a request with this Origin header may be
// served: one of Options.Origins, or one of the API's own origins
// (http:// + an accepted Host).
func (ac *access) originAllowed(r *http.Request, origin string) bool {
	scheme, hp, err := splitOrigin(origin)
	if err != nil {
		return false // "null", an empty header, garbage
	}
	if ac.origins[joinOrigin(scheme, hp)] {
		return true
	}
	return scheme == "http" && ac.hostAccepted(r, hp)
}

// tokenOK reports whether r carries "Authorization: Bearer <token>". The
// comparison is of SHA-256 digests in constant time, so it reveals neither
// the token nor its length.
func (ac *access) tokenOK(r *http.Request) bool {
	scheme, given, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(given)))
	return subtle.ConstantTimeCompare(sum[:], ac.token[:]) == 1
}

// guard applies the access rules before next: a Host that is not this API's
// is refused with 403, so is a foreign Origin (allowed ones get CORS
// headers, and a preflight is answered here); without the token every route
// but /metrics is refused with 401.
func (ac *access) guard(w http.ResponseWriter, r *http.Request, next http.Handler) {
	h := w.Header()
	h.Add("Vary", "Origin")
	hp, ok := parseHost(r.Host, "80")
	if !ok || !ac.hostAccepted(r, hp) {
		writeError(w, http.StatusForbidden, fmt.Sprintf("host %q is not an address of this peer", r.Host))
		return
	}
	origins, present := r.Header["Origin"]
	if site := r.Header.Get("Sec-Fetch-Site"); !present && site != "" && site != "same-origin" && site != "none" {
		// A browser sends some requests of other pages without Origin (an
		// <img>, a no-cors GET), from other sites or from other ports of
		// this host. It cannot read the answer, but a GET opens the
		// document it names: such pages could fill Config.MaxDocs. curl
		// and scripts send no Sec-Fetch-Site; a typed-in URL sends none.
		writeError(w, http.StatusForbidden, fmt.Sprintf("a browser request from another page (Sec-Fetch-Site: %s) without an Origin is not allowed", site))
		return
	}
	if present {
		if len(origins) != 1 || !ac.originAllowed(r, origins[0]) {
			writeError(w, http.StatusForbidden, fmt.Sprintf("origin %q is not allowed (see --http-origin)", strings.Join(origins, ", ")))
			return
		}
		h.Set("Access-Control-Allow-Origin", origins[0])
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			// A preflight never carries credentials, so it is answered
			// without the token; the request it announces needs it.
			h.Set("Access-Control-Allow-Methods", allowMethods)
			h.Set("Access-Control-Allow-Headers", allowHeaders)
			h.Set("Access-Control-Max-Age", strconv.Itoa(PreflightMaxAge))
			w.WriteHeader(http.StatusNoContent)
			return
		}
	}
	if ac.token != nil && r.URL.Path != "/metrics" && !ac.tokenOK(r) {
		h.Set("WWW-Authenticate", `Bearer realm="concord"`)
		writeError(w, http.StatusUnauthorized, "this peer needs Authorization: Bearer <token> (see --http-token)")
		return
	}
	next.ServeHTTP(w, r)
}
