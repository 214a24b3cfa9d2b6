// Package geoip opens the GeoLite2 databases of a data folder once and
// answers lookups on them for both users: the parser's GeoIpCity,
// GeoIpASN and IpToRange statics methods and the GeoIPEnrich family of
// expr helpers. It is the only code that opens an mmdb file.
package geoip

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync"

	"github.com/oschwald/maxminddb-golang/v2"
)

// Database file names, as upstream looks them up in its data folder.
const (
	CityDB = "GeoLite2-City.mmdb"
	ASNDB  = "GeoLite2-ASN.mmdb"
)

// ErrClosed is the error of a lookup after Close.
var ErrClosed = errors.New("GeoIP databases are closed")

// DB holds the opened databases; either may be absent. A nil *DB has no
// database. Its methods are safe for concurrent use, also with Close, so
// an expression still running when its rules are unloaded fails cleanly.
type DB struct {
	dir string

	mu        sync.RWMutex
	city, asn *maxminddb.Reader
	closed    bool
}

// Open opens dir's CityDB and ASNDB. A missing file is not an error (that
// database is then absent); one that is there but unreadable is.
func Open(dir string) (*DB, error) {
	db := &DB{dir: dir}
	if dir == "" {
		return db, nil
	}
	var err error
	if db.city, err = openReader(filepath.Join(dir, CityDB)); err != nil {
		return nil, err
	}
	if db.asn, err = openReader(filepath.Join(dir, ASNDB)); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

func openReader(path string) (*maxminddb.Reader, error) {
	r, err := maxminddb.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("opening GeoIP database %s: %w", path, err)
	}
	return r, nil
}

// Dir is the folder the databases were looked for in.
func (db *DB) Dir() string {
	if db == nil {
		return ""
	}
	return db.dir
}

// Close releases the databases; later lookups report them absent.
func (db *DB) Close() error {
	if db == nil {
		return nil
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	var errs []error
	for _, r := range []*maxminddb.Reader{db.city, db.asn} {
		if r != nil {
			errs = append(errs, r.Close())
		}
	}
	db.city, db.asn, db.closed = nil, nil, true
	return errors.Join(errs...)
}

// HasCity reports whether the city database is open.
func (db *DB) HasCity() bool {
	if db == nil {
		return false
	}
	db.mu.RLock()
	defer db.mu.RUnlock()
	return db.city != nil
}

// HasASN reports whether the ASN database is open.
func (db *DB) HasASN() bool {
	if db == nil {
		return false
	}
	db.mu.RLock()
	defer db.mu.RUnlock()
	return db.asn != nil
}

// lookup runs one lookup in the chosen database under the read lock;
// ok is false when that database is absent.
func (db *DB) lookup(asn bool, ip netip.Addr, fn func(maxminddb.Result) error) (ok bool, err error) {
	if db == nil {
		return false, nil
	}
	db.mu.RLock()
	defer db.mu.RUnlock()
	r := db.city
	if asn {
		r = db.asn
	}
	if r == nil {
		return false, nil
	}
	res := r.Lookup(ip.Unmap())
	if err := res.Err(); err != nil {
		return true, fmt.Errorf("GeoIP lookup of %s: %w", ip, err)
	}
	return true, fn(res)
}

// DecodeCity decodes the city record of ip into out (a struct with
// maxminddb tags). An address the database does not hold leaves out as
// it was. ok is false when there is no city database.
func (db *DB) DecodeCity(ip netip.Addr, out any) (ok bool, err error) {
	return db.lookup(false, ip, func(res maxminddb.Result) error { return decode(res, ip, out) })
}

// DecodeASN is DecodeCity on the ASN database.
func (db *DB) DecodeASN(ip netip.Addr, out any) (ok bool, err error) {
	return db.lookup(true, ip, func(res maxminddb.Result) error { return decode(res, ip, out) })
}

func decode(res maxminddb.Result, ip netip.Addr, out any) error {
	if !res.Found() {
		return nil
	}
	if err := res.Decode(out); err != nil {
		return fmt.Errorf("GeoIP record of %s: %w", ip, err)
	}
	return nil
}

// ASNNetwork returns the network of the ASN database that holds ip
// (IPv4 addresses get an IPv4 prefix); found is false when none does.
// ok is false when there is no ASN database.
func (db *DB) ASNNetwork(ip netip.Addr) (p netip.Prefix, found, ok bool, err error) {
	ok, err = db.lookup(true, ip, func(res maxminddb.Result) error {
		if res.Found() {
			p, found = res.Prefix(), true
		}
		return nil
	})
	return p, found, ok, err
}
