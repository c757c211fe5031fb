// Package console is Berth's web console, served by every server at `/`:
// server-rendered pages (html/template, embedded CSS and a few lines of
// script, nothing from a CDN) over the same calls the APIs answer. Pages
// refresh their main part every two seconds without a reload. Three
// actions — stop a task, scale a service, snapshot a volume — each ask
// for confirmation on a page of their own, and post a form that carries a
// token bound to the session (and the request's own origin is checked).
//
// When the server requires signed requests, the console asks for an
// access key and its secret once, and keeps a short-lived session in
// etcd (a random token in an HttpOnly, SameSite=Strict cookie; etcd holds
// only its SHA-256); the secret is never stored, in the browser or on the
// server. On a server open on loopback the console is open as the API is.
package console

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"encoding/json"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berth-project/berth/internal/ecs"
	"github.com/berth-project/berth/internal/state"
	"github.com/berth-project/berth/internal/volume"
)

//go:embed static templates
var files embed.FS

// SessionTTL is how long a console session lasts.
const SessionTTL = time.Hour

const cookieName = "berth_session"

// Console serves the web console.
type Console struct {
	ECS     *ecs.API
	Volumes *volume.API
	// EFS is the EFS API (restJson), called in-process without
	// authentication: the console has authenticated its user.
	EFS   http.Handler
	Store *state.Store
	// Credentials are the operators' access keys; empty means the
	// console is open, as the API is on loopback.
	Credentials map[string]string
	Log         *slog.Logger

	secret []byte // for the tokens of an open console's forms
	pages  map[string]*template.Template
}

// Routes mounts the console on mux.
func (c *Console) Routes(mux *http.ServeMux) {
	c.secret = make([]byte, 32)
	rand.Read(c.secret)
	c.pages = map[string]*template.Template{}
	for _, p := range []string{"clusters", "cluster", "task", "service", "volumes", "filesystems", "confirm", "login", "error"} {
		c.pages[p] = template.Must(template.New(p).Funcs(funcs).ParseFS(files, "templates/layout.html", "templates/parts.html", "templates/"+p+".html"))
	}
	static, _ := fs.Sub(files, "static")
	mux.Handle("GET /console/static/", http.StripPrefix("/console/static/", http.FileServer(http.FS(static))))
	mux.HandleFunc("GET /console/login", c.loginPage)
	mux.HandleFunc("POST /console/login", c.login)
	mux.HandleFunc("POST /console/logout", c.logout)
	mux.Handle("GET /{$}", c.page(c.clusters))
	mux.Handle("GET /console/{$}", c.page(c.clusters))
	mux.Handle("GET /console/clusters/{cluster}", c.page(c.cluster))
	mux.Handle("GET /console/clusters/{cluster}/tasks/{task}", c.page(c.task))
	mux.Handle("GET /console/clusters/{cluster}/services/{service}", c.page(c.service))
	mux.Handle("GET /console/volumes", c.page(c.volumes))
	mux.Handle("GET /console/filesystems", c.page(c.filesystems))
	mux.Handle("GET /console/clusters/{cluster}/tasks/{task}/stop", c.page(c.confirmStop))
	mux.Handle("POST /console/clusters/{cluster}/tasks/{task}/stop", c.action(c.stopTask))
	mux.Handle("GET /console/clusters/{cluster}/services/{service}/scale", c.page(c.confirmScale))
	mux.Handle("POST /console/clusters/{cluster}/services/{service}/scale", c.action(c.scaleService))
	mux.Handle("GET /console/volumes/{cluster}/{volume}/snapshot", c.page(c.confirmSnapshot))
	mux.Handle("POST /console/volumes/{cluster}/{volume}/snapshot", c.action(c.snapshot))
}

// view is what a page handler returns: the template and its data.
type view struct {
	Page  string
	Title string
	Data  any
}

// pageData is what every template gets.
type pageData struct {
	Title   string
	User    string
	Open    bool
	CSRF    string
	Nav     string
	Data    any
	Flash   string
	Refresh bool
}

type session struct {
	AccessKey string `json:"accessKey"`
	CSRF      string `json:"csrf"`
}

// user returns the request's session: the open console's, a valid
// session's, or nil.
func (c *Console) user(r *http.Request) *session {
	if len(c.Credentials) == 0 {
		mac := hmac.New(sha256.New, c.secret)
		mac.Write([]byte("open"))
		return &session{CSRF: hex.EncodeToString(mac.Sum(nil))}
	}
	ck, err := r.Cookie(cookieName)
	if err != nil || len(ck.Value) != 64 {
		return nil
	}
	var s session
	if _, err := c.Store.Get(r.Context(), state.ConsoleSessionKey(sessionSum(ck.Value)), &s); err != nil {
		return nil
	}
	return &s
}

func sessionSum(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// page wraps a page handler: authentication, then the full page, or only
// its main part for the live refresh.
func (c *Console) page(h func(*http.Request) (*view, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := c.user(r)
		if s == nil {
			http.Redirect(w, r, "/console/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		v, err := h(r)
		if err != nil {
			c.render(w, r, s, &view{Page: "error", Title: "Error", Data: err.Error()}, http.StatusBadRequest)
			return
		}
		c.render(w, r, s, v, http.StatusOK)
	})
}

func (c *Console) render(w http.ResponseWriter, r *http.Request, s *session, v *view, status int) {
	d := &pageData{Title: v.Title, User: s.AccessKey, Open: len(c.Credentials) == 0, CSRF: s.CSRF, Data: v.Data,
		Nav: navOf(r.URL.Path), Flash: r.URL.Query().Get("done"), Refresh: v.Page != "confirm" && v.Page != "error"}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; form-action 'self'")
	w.Header().Set("Referrer-Policy", "same-origin")
	w.WriteHeader(status)
	name := "layout"
	if r.Header.Get("X-Berth-Fragment") == "1" {
		name = "main"
	}
	if err := c.pages[v.Page].ExecuteTemplate(w, name, d); err != nil && c.Log != nil {
		c.Log.Warn("console: render", "page", v.Page, "err", err)
	}
}

func navOf(path string) string {
	switch {
	case strings.HasPrefix(path, "/console/volumes"):
		return "volumes"
	case strings.HasPrefix(path, "/console/filesystems"):
		return "filesystems"
	}
	return "clusters"
}

// action wraps a form post: a session, its token, and a request from the
// console's own pages.
func (c *Console) action(h func(*http.Request) (string, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := c.user(r)
		if s == nil {
			http.Error(w, "not signed in", http.StatusUnauthorized)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		if err := r.ParseForm(); err != nil || !sameOrigin(r) ||
			subtle.ConstantTimeCompare([]byte(r.PostForm.Get("csrf")), []byte(s.CSRF)) != 1 {
			http.Error(w, "the form is not from this console", http.StatusForbidden)
			return
		}
		next, err := h(r)
		if err != nil {
			c.render(w, r, s, &view{Page: "error", Title: "Error", Data: err.Error()}, http.StatusBadRequest)
			return
		}
		http.Redirect(w, r, next, http.StatusSeeOther)
	})
}

// sameOrigin refuses a post another site's page made: browsers say where
// a request comes from.
func sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return false
	}
	if o := r.Header.Get("Origin"); o != "" && o != "null" {
		u, err := url.Parse(o)
		return err == nil && u.Host == r.Host
	}
	return true
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	if len(c.Credentials) == 0 {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	c.render(w, r, &session{}, &view{Page: "login", Title: "Sign in", Data: map[string]string{"Next": safeNext(r.URL.Query().Get("next")), "Error": ""}}, http.StatusOK)
}

func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		return "/"
	}
	return next
}

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil || !sameOrigin(r) {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	key, secret, next := r.PostForm.Get("accessKey"), r.PostForm.Get("secretKey"), safeNext(r.PostForm.Get("next"))
	want, ok := c.Credentials[key]
	if !ok || subtle.ConstantTimeCompare([]byte(want), []byte(secret)) != 1 {
		time.Sleep(200 * time.Millisecond) // a guess costs time
		c.render(w, r, &session{}, &view{Page: "login", Title: "Sign in", Data: map[string]string{"Next": next, "Error": "Unknown access key or wrong secret."}}, http.StatusUnauthorized)
		return
	}
	tok := make([]byte, 32)
	rand.Read(tok)
	csrf := make([]byte, 32)
	rand.Read(csrf)
	token := hex.EncodeToString(tok)
	if err := c.putSession(r.Context(), sessionSum(token), &session{AccessKey: key, CSRF: hex.EncodeToString(csrf)}); err != nil {
		http.Error(w, "could not start a session: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: token, Path: "/", HttpOnly: true, Secure: r.TLS != nil,
		SameSite: http.SameSiteStrictMode, MaxAge: int(SessionTTL / time.Second)})
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (c *Console) putSession(ctx context.Context, sum string, s *session) error {
	lease, err := c.Store.Client.Grant(ctx, int64(SessionTTL/time.Second))
	if err != nil {
		return err
	}
	b, _ := json.Marshal(s)
	_, err = c.Store.Client.Put(ctx, state.ConsoleSessionKey(sum), string(b), clientv3.WithLease(lease.ID))
	return err
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	if ck, err := r.Cookie(cookieName); err == nil && sameOrigin(r) {
		c.Store.Client.Delete(r.Context(), state.ConsoleSessionKey(sessionSum(ck.Value)))
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/console/login", http.StatusSeeOther)
}
