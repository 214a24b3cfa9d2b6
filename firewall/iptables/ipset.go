package iptables

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// The ipset netlink ABI (include/uapi/linux/netfilter/ipset/ip_set.h).
const (
	ipsetProtocol   = 6 // the kernel accepts 6 and 7; 6 is understood by every kernel since 3.x
	ipsetMaxNameLen = 31

	ipsetCmdCreate  = 2
	ipsetCmdDestroy = 3
	ipsetCmdFlush   = 4
	ipsetCmdSwap    = 6
	ipsetCmdList    = 7
	ipsetCmdAdd     = 9
	ipsetCmdDel     = 10
	ipsetCmdHeader  = 12
	ipsetCmdType    = 13

	// command-level attributes
	attrProtocol = 1
	attrSetname  = 2
	attrTypename = 3 // also SETNAME2 for swap
	attrRevision = 4
	attrFamily   = 5
	attrFlags    = 6
	attrData     = 7
	attrADT      = 8
	attrLineno   = 9

	// data attributes
	attrIP         = 1
	attrCIDR       = 3
	attrTimeout    = 6
	attrCadtFlags  = 8
	attrHashsize   = 18
	attrMaxelem    = 19
	attrElements   = 24
	attrReferences = 25
	attrMemsize    = 26

	attrIPv4 = 1
	attrIPv6 = 2

	flagListHeader = 1 << 2 // IPSET_FLAG_LIST_HEADER: header only, no members

	nested   = unix.NLA_F_NESTED
	netorder = unix.NLA_F_NET_BYTEORDER

	// errno values private to ipset
	errIpsetPrivate    = 4096
	errIpsetBusy       = 4100
	errIpsetReferenced = 4108
	errIpsetHashFull   = 4352

	// maxADT bounds the nested ADT attribute, whose length field is 16 bits.
	maxADT = 65535 - 128
)

// ipsetErrors are libipset's wording of the kernel's private errno values.
var ipsetErrors = map[int]string{
	4097: "kernel and userspace protocol versions differ",
	4098: "set type not supported by the kernel",
	4099: "kernel set limit reached",
	4100: "set is in use by a kernel component",
	4101: "second set does not exist",
	4102: "sets have different types or families",
	4103: "element already present or absent",
	4104: "invalid CIDR (a hash:net set takes /1../32 or /1../128, never /0)",
	4105: "invalid netmask",
	4106: "invalid protocol family",
	4107: "set has no timeout support",
	4108: "set is referenced by another set or rule",
	4109: "invalid IPv4 address",
	4110: "invalid IPv6 address",
	4111: "set has no counter support",
	4112: "set has no comment support",
	4352: "hash is full (maxelem reached)",
	4353: "invalid hash element",
}

// kernelError is an errno the kernel returned for an ipset request.
type kernelError int

func (e kernelError) Error() string {
	if int(e) < errIpsetPrivate {
		return syscall.Errno(e).Error()
	}
	if s, ok := ipsetErrors[int(e)]; ok {
		return s
	}
	return fmt.Sprintf("ipset error %d", int(e))
}

// Is makes errors.Is(err, syscall.ENOENT) and the like work.
func (e kernelError) Is(target error) bool {
	t, ok := target.(syscall.Errno)
	return ok && int(t) == int(e)
}

func isNotExist(err error) bool { return errors.Is(err, syscall.ENOENT) }

func isInUse(err error) bool {
	var k kernelError
	return errors.As(err, &k) && (k == errIpsetBusy || k == errIpsetReferenced || k == kernelError(syscall.EBUSY))
}

// lineError is a kernel refusal of one element of a batch; raw holds the
// element's 1-based number in the batch source.
type lineError struct {
	raw [4]byte
	err kernelError
}

func (e *lineError) Error() string { return e.err.Error() }
func (e *lineError) Unwrap() error { return e.err }

// key is an element in a compact, comparable form: an IPv4 address sits in
// the low 32 bits of lo.
type key struct {
	hi, lo uint64
	bits   uint8
}

func (k key) cmp(o key) int {
	switch {
	case k.hi != o.hi:
		return cmpU64(k.hi, o.hi)
	case k.lo != o.lo:
		return cmpU64(k.lo, o.lo)
	default:
		return int(k.bits) - int(o.bits)
	}
}

func cmpU64(a, b uint64) int {
	if a < b {
		return -1
	}
	return 1
}

// member is a set element as listed by the kernel, with its remaining
// timeout in seconds (0: permanent).
type member struct {
	k       key
	timeout uint32
}

// header is what the kernel says about a set, without its members.
type header struct {
	typename   string
	revision   uint8
	family     uint8
	maxelem    uint32
	hashsize   uint32
	elements   uint32
	references uint32
	memsize    uint32
	timeout    *uint32 // default timeout; nil: no timeout support
	cadtFlags  uint32
}

// conn is a NETLINK_NETFILTER socket speaking ipset, bound to one network
// namespace for its whole life. It sends many elements per message (the
// ADT container that `ipset restore` also uses) and reads listings in a
// streaming way, keeping only compact keys.
type conn struct {
	mu   sync.Mutex
	fd   int
	seq  uint32
	rbuf []byte
	m    msg
}

func dial(ns netns.NsHandle) (*conn, error) {
	fd := -1
	err := inNS(ns, func() error {
		var err error
		fd, err = unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("open netfilter netlink socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bind netfilter netlink socket: %w", err)
	}
	// Big buffers: the kernel echoes a whole 64 KiB batch when it refuses an
	// element of it. Forcing needs CAP_NET_ADMIN, which we have if we can
	// touch ipset at all; the plain option is the fallback.
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 4<<20) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
	}
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 1<<20) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 1<<20)
	}
	// The kernel answers synchronously; a reply that never comes is a bug,
	// not something to wait for forever.
	tv := unix.NsecToTimeval(int64(60 * time.Second))
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	return &conn{fd: fd, rbuf: make([]byte, 1<<20)}, nil
}

func (c *conn) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fd < 0 {
		return nil
	}
	err := unix.Close(c.fd)
	c.fd = -1
	return err
}

// msg builds one netlink message in a reusable buffer.
type msg struct{ b []byte }

func (m *msg) start(cmd int, flags uint16, seq uint32, family uint8) {
	m.b = m.b[:0]
	m.b = binary.NativeEndian.AppendUint32(m.b, 0) // length, set by bytes
	m.b = binary.NativeEndian.AppendUint16(m.b, uint16(unix.NFNL_SUBSYS_IPSET<<8|cmd))
	m.b = binary.NativeEndian.AppendUint16(m.b, flags)
	m.b = binary.NativeEndian.AppendUint32(m.b, seq)
	m.b = binary.NativeEndian.AppendUint32(m.b, 0) // port id: the kernel fills it in
	m.b = append(m.b, family, unix.NFNETLINK_V0, 0, 0)
	m.u8(attrProtocol, ipsetProtocol)
}

func (m *msg) attr(typ uint16, data []byte) {
	m.b = binary.NativeEndian.AppendUint16(m.b, uint16(4+len(data)))
	m.b = binary.NativeEndian.AppendUint16(m.b, typ)
	m.b = append(m.b, data...)
	for len(m.b)%4 != 0 {
		m.b = append(m.b, 0)
	}
}

func (m *msg) u8(typ uint16, v uint8) { m.attr(typ, []byte{v}) }

func (m *msg) u32be(typ uint16, v uint32) {
	var a [4]byte
	binary.BigEndian.PutUint32(a[:], v)
	m.attr(typ|netorder, a[:])
}

func (m *msg) str(typ uint16, s string) { m.attr(typ, append([]byte(s), 0)) }

func (m *msg) begin(typ uint16) int {
	off := len(m.b)
	m.b = binary.NativeEndian.AppendUint16(m.b, 0)
	m.b = binary.NativeEndian.AppendUint16(m.b, typ|nested)
	return off
}

func (m *msg) end(off int) {
	binary.NativeEndian.PutUint16(m.b[off:], uint16(len(m.b)-off))
}

func (m *msg) ip(k key, family uint8) {
	off := m.begin(attrIP)
	if family == unix.AF_INET {
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], uint32(k.lo))
		m.attr(attrIPv4|netorder, a[:])
	} else {
		var a [16]byte
		binary.BigEndian.PutUint64(a[:8], k.hi)
		binary.BigEndian.PutUint64(a[8:], k.lo)
		m.attr(attrIPv6|netorder, a[:])
	}
	m.end(off)
}

func (m *msg) bytes() []byte {
	binary.NativeEndian.PutUint32(m.b, uint32(len(m.b)))
	return m.b
}

// attrs iterates over the netlink attributes in b, flags stripped from type.
func attrs(b []byte, fn func(typ uint16, v []byte)) {
	for len(b) >= 4 {
		l := int(binary.NativeEndian.Uint16(b))
		t := binary.NativeEndian.Uint16(b[2:]) &^ (nested | netorder)
		if l < 4 || l > len(b) {
			return
		}
		fn(t, b[4:l])
		l = (l + 3) &^ 3
		if l > len(b) {
			return
		}
		b = b[l:]
	}
}

func be32(v []byte) uint32 {
	if len(v) < 4 {
		return 0
	}
	return binary.BigEndian.Uint32(v)
}

// roundTrip sends the built message and reads replies until its ack (or,
// for a dump, NLMSG_DONE), handing each data message's attributes (after
// the nfgenmsg) to fn. A refused batch element comes back as *lineError.
func (c *conn) roundTrip(dump bool, fn func(payload []byte)) error {
	if c.fd < 0 {
		return errors.New("netlink socket closed")
	}
	out := c.m.bytes()
	seq := binary.NativeEndian.Uint32(out[8:])
	for {
		err := unix.Sendto(c.fd, out, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("netlink send: %w", err)
		}
		break
	}
	for {
		n, _, err := unix.Recvfrom(c.fd, c.rbuf, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("netlink receive: %w", err)
		}
		b := c.rbuf[:n]
		for len(b) >= unix.NLMSG_HDRLEN {
			l := int(binary.NativeEndian.Uint32(b))
			typ := binary.NativeEndian.Uint16(b[4:])
			mseq := binary.NativeEndian.Uint32(b[8:])
			if l < unix.NLMSG_HDRLEN || l > len(b) {
				return fmt.Errorf("netlink: malformed reply (length %d of %d)", l, len(b))
			}
			body := b[unix.NLMSG_HDRLEN:l]
			b = b[min((l+3)&^3, len(b)):]
			if mseq != seq {
				continue // a late reply to an earlier, abandoned request
			}
			switch typ {
			case unix.NLMSG_ERROR:
				if len(body) < 4 {
					return errors.New("netlink: short error reply")
				}
				code := -int32(binary.NativeEndian.Uint32(body))
				if code == 0 {
					return nil
				}
				if raw := errLine(body[4:]); raw != [4]byte{} {
					return &lineError{raw: raw, err: kernelError(code)}
				}
				return kernelError(code)
			case unix.NLMSG_DONE:
				if len(body) >= 4 {
					if code := -int32(binary.NativeEndian.Uint32(body)); code > 0 {
						return kernelError(code)
					}
				}
				return nil
			case unix.NLMSG_NOOP, unix.NLMSG_OVERRUN:
				continue
			default:
				if len(body) >= 4 && fn != nil {
					fn(body[4:])
				}
				if !dump {
					continue // the ack follows
				}
			}
		}
	}
}

// errLine returns the raw line number the kernel put into its copy of a
// refused batch message. Kernels differ in the byte order they write it in
// (the attribute says network order, some write host order), so adt checks
// both readings against the batch's range.
func errLine(orig []byte) [4]byte {
	var raw [4]byte
	if len(orig) < unix.NLMSG_HDRLEN+4 {
		return raw
	}
	attrs(orig[unix.NLMSG_HDRLEN+4:], func(typ uint16, v []byte) {
		if typ == attrLineno && len(v) >= 4 {
			copy(raw[:], v)
		}
	})
	return raw
}

// in picks the reading of a raw line number that falls in (lo, hi].
func (e *lineError) in(lo, hi int) (int, bool) {
	for _, l := range []int{int(binary.BigEndian.Uint32(e.raw[:])), int(binary.NativeEndian.Uint32(e.raw[:]))} {
		if l > lo && l <= hi {
			return l, true
		}
	}
	return 0, false
}

func (c *conn) next() uint32 {
	c.seq++
	return c.seq
}

// typeRevision returns the newest revision of typename the kernel offers.
func (c *conn) typeRevision(typename string, family uint8) (uint8, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m.start(ipsetCmdType, unix.NLM_F_REQUEST|unix.NLM_F_ACK, c.next(), unix.AF_INET)
	c.m.str(attrTypename, typename)
	c.m.u8(attrFamily, family)
	var rev uint8
	err := c.roundTrip(false, func(p []byte) {
		attrs(p, func(typ uint16, v []byte) {
			if typ == attrRevision && len(v) > 0 {
				rev = v[0]
			}
		})
	})
	if err != nil {
		return 0, fmt.Errorf("ipset type %s: %w", typename, err)
	}
	return rev, nil
}

// createOpts are the parameters of a new set.
type createOpts struct {
	typename  string
	revision  uint8
	family    uint8
	maxelem   uint32
	hashsize  uint32  // 0: the kernel's default
	timeout   *uint32 // default timeout; nil: no timeout support
	cadtFlags uint32  // counters, comments ... copied when growing a set
}

// create makes a set; it fails with EEXIST if one of that name exists.
func (c *conn) create(name string, o createOpts) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m.start(ipsetCmdCreate, unix.NLM_F_REQUEST|unix.NLM_F_ACK|unix.NLM_F_CREATE|unix.NLM_F_EXCL, c.next(), o.family)
	c.m.str(attrSetname, name)
	c.m.str(attrTypename, o.typename)
	c.m.u8(attrRevision, o.revision)
	c.m.u8(attrFamily, o.family)
	d := c.m.begin(attrData)
	if o.maxelem > 0 {
		c.m.u32be(attrMaxelem, o.maxelem)
	}
	if o.hashsize > 0 {
		c.m.u32be(attrHashsize, o.hashsize)
	}
	if o.timeout != nil {
		c.m.u32be(attrTimeout, *o.timeout)
	}
	if o.cadtFlags != 0 {
		c.m.u32be(attrCadtFlags, o.cadtFlags)
	}
	c.m.end(d)
	if err := c.roundTrip(false, nil); err != nil {
		return fmt.Errorf("ipset create %s %s maxelem %d: %w", name, o.typename, o.maxelem, err)
	}
	return nil
}

// simple sends a command that names one or two sets and carries nothing else.
func (c *conn) simple(cmd int, verb, name, name2 string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m.start(cmd, unix.NLM_F_REQUEST|unix.NLM_F_ACK, c.next(), unix.AF_INET)
	c.m.str(attrSetname, name)
	if name2 != "" {
		c.m.str(attrTypename, name2)
	}
	if err := c.roundTrip(false, nil); err != nil {
		if name2 != "" {
			return fmt.Errorf("ipset %s %s %s: %w", verb, name, name2, err)
		}
		return fmt.Errorf("ipset %s %s: %w", verb, name, err)
	}
	return nil
}

func (c *conn) destroy(name string) error { return c.simple(ipsetCmdDestroy, "destroy", name, "") }
func (c *conn) flush(name string) error   { return c.simple(ipsetCmdFlush, "flush", name, "") }

// swap exchanges the contents of two sets of one type and family; rules
// that reference either keep referencing the same name. Atomic.
func (c *conn) swap(a, b string) error { return c.simple(ipsetCmdSwap, "swap", a, b) }

// exists says whether a set of that name exists. It asks for the set's
// identity only (IPSET_CMD_HEADER), which costs the kernel nothing, unlike
// a listed header, whose size and element count it computes by walking
// every bucket (18 ms for a million elements).
func (c *conn) exists(name string) (bool, error) {
	err := c.simple(ipsetCmdHeader, "header", name, "")
	if isNotExist(err) {
		return false, nil
	}
	return err == nil, err
}

// header returns a set's header; an error wrapping ENOENT means no such
// set. See exists for its cost.
func (c *conn) header(name string) (header, error) {
	var h header
	err := c.list(name, true, &h, nil)
	return h, err
}

// list dumps a set: its header into h (if not nil) and each member to fn.
func (c *conn) list(name string, headerOnly bool, h *header, fn func(member)) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m.start(ipsetCmdList, unix.NLM_F_REQUEST|unix.NLM_F_DUMP, c.next(), unix.AF_INET)
	c.m.str(attrSetname, name)
	if headerOnly {
		c.m.u32be(attrFlags, flagListHeader)
	}
	var family uint8
	err := c.roundTrip(true, func(p []byte) {
		attrs(p, func(typ uint16, v []byte) {
			switch typ {
			case attrTypename:
				if h != nil && len(v) > 0 {
					h.typename = cstring(v)
				}
			case attrRevision:
				if h != nil && len(v) > 0 {
					h.revision = v[0]
				}
			case attrFamily:
				if len(v) > 0 {
					family = v[0]
					if h != nil {
						h.family = v[0]
					}
				}
			case attrData:
				if h != nil {
					parseHeaderData(v, h)
				}
			case attrADT:
				if fn == nil {
					return
				}
				attrs(v, func(typ uint16, v []byte) {
					if typ == attrData {
						fn(parseMember(v, family))
					}
				})
			}
		})
	})
	if err != nil {
		return fmt.Errorf("ipset list %s: %w", name, err)
	}
	return nil
}

func cstring(v []byte) string {
	for i, c := range v {
		if c == 0 {
			return string(v[:i])
		}
	}
	return string(v)
}

func parseHeaderData(v []byte, h *header) {
	attrs(v, func(typ uint16, v []byte) {
		switch typ {
		case attrMaxelem:
			h.maxelem = be32(v)
		case attrHashsize:
			h.hashsize = be32(v)
		case attrElements:
			h.elements = be32(v)
		case attrReferences:
			h.references = be32(v)
		case attrMemsize:
			h.memsize = be32(v)
		case attrTimeout:
			t := be32(v)
			h.timeout = &t
		case attrCadtFlags:
			h.cadtFlags = be32(v)
		}
	})
}

func parseMember(v []byte, family uint8) member {
	var m member
	m.k.bits = 32
	if family == unix.AF_INET6 {
		m.k.bits = 128
	}
	attrs(v, func(typ uint16, v []byte) {
		switch typ {
		case attrIP:
			attrs(v, func(typ uint16, a []byte) {
				switch {
				case typ == attrIPv4 && len(a) == 4:
					m.k.lo = uint64(binary.BigEndian.Uint32(a))
				case typ == attrIPv6 && len(a) == 16:
					m.k.hi = binary.BigEndian.Uint64(a[:8])
					m.k.lo = binary.BigEndian.Uint64(a[8:])
				}
			})
		case attrCIDR:
			if len(v) > 0 {
				m.k.bits = v[0]
			}
		case attrTimeout:
			m.timeout = be32(v)
		}
	})
	return m
}

// source yields the elements of a batch by index: ok false skips index i
// (another family, a cancelled delete). withTimeout says whether to send t.
type source func(i int) (k key, t uint32, ok bool)

// rejection is one element the kernel refused.
type rejection struct {
	index int
	err   kernelError
}

// errSetFull reports that the set reached maxelem at index at; the caller
// grows it and resumes there.
type errSetFull struct{ at int }

func (e *errSetFull) Error() string { return fmt.Sprintf("hash is full at element %d", e.at) }

// adt adds (or deletes) elements [start, n) of src to set, as many per
// netlink message as fit. Without NLM_F_EXCL the kernel applies `-exist`
// semantics: an add refreshes the timeout of a present element and a
// delete of an absent one is no error. Elements the kernel refuses are
// collected and skipped; a full set stops the batch with *errSetFull.
func (c *conn) adt(ctx context.Context, cmd int, set string, family uint8, withTimeout bool, start, n int, src source) ([]rejection, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var rejected []rejection
	i := start
	for i < n {
		if err := ctx.Err(); err != nil {
			return rejected, err
		}
		c.m.start(cmd, unix.NLM_F_REQUEST|unix.NLM_F_ACK, c.next(), family)
		c.m.str(attrSetname, set)
		c.m.u32be(attrLineno, 0) // asks the kernel to name a refused element
		adtOff := c.m.begin(attrADT)
		first, count := i, 0
		for ; i < n && len(c.m.b)-adtOff < maxADT; i++ {
			k, t, ok := src(i)
			if !ok {
				continue
			}
			d := c.m.begin(attrData)
			c.m.ip(k, family)
			c.m.u8(attrCIDR, k.bits)
			if withTimeout {
				c.m.u32be(attrTimeout, t)
			}
			c.m.u32be(attrLineno, uint32(i+1))
			c.m.end(d)
			count++
		}
		c.m.end(adtOff)
		if count == 0 {
			break
		}
		err := c.roundTrip(false, nil)
		if err == nil {
			continue
		}
		var le *lineError
		if !errors.As(err, &le) {
			return rejected, err
		}
		line, ok := le.in(first, i)
		if !ok {
			return rejected, err
		}
		if le.err == errIpsetHashFull {
			return rejected, &errSetFull{at: line - 1}
		}
		rejected = append(rejected, rejection{index: line - 1, err: le.err})
		i = line // resume after the refused element
	}
	return rejected, nil
}
