// Command demoweb is the web server of `make demo`: it answers 200 on "/"
// and 404 elsewhere, and writes each request to an nginx "combined" access
// log, so the agent has something real to read.
//
//	demoweb -listen :8000 -log /tmp/access.log
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"sync"
	"time"
)

func main() {
	listen := flag.String("listen", ":8000", "address to listen on")
	path := flag.String("log", "access.log", "nginx-format access log to append to")
	flag.Parse()
	f, err := os.OpenFile(*path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		log.Fatal(err)
	}
	var mu sync.Mutex
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		status := http.StatusNotFound
		if r.URL.Path == "/" {
			status = http.StatusOK
		}
		w.WriteHeader(status)
		fmt.Fprintln(w, http.StatusText(status))
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(f, "%s - - [%s] \"%s %s %s\" %d 0 \"-\" %q\n", host, time.Now().Format("02/Jan/2006:15:04:05 -0700"),
			r.Method, r.URL.RequestURI(), r.Proto, status, r.UserAgent())
	})
	srv := &http.Server{Addr: *listen, Handler: h, ReadHeaderTimeout: 5 * time.Second}
	log.Fatal(srv.ListenAndServe())
}
