package nftables

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Set elements do not go through google/nftables: it has no "destroy
// element", marshals every element into attribute slices (slow and heavy
// at a million elements), lets the 16-bit length of the element list
// overflow silently, and cannot tell which message of a batch failed. This
// file writes the element messages straight into the batch buffer and
// reads one acknowledgement per message, matched by sequence number.

const (
	subsysNFTables   = 10
	msgNewSetElem    = unix.NFT_MSG_NEWSETELEM
	msgGetSetElem    = unix.NFT_MSG_GETSETELEM
	msgDelSetElem    = unix.NFT_MSG_DELSETELEM
	msgDestroySetElm = 30 // NFT_MSG_DESTROYSETELEM, Linux 6.3: delete, ignoring absent elements

	nlmsgHdrLen  = 16
	maxListBytes = 65000 // an element list is one attribute: 16-bit length
	recvBufSize  = 1 << 16
	ackTimeout   = 2 * time.Minute // the kernel has acted once sendmsg returns; this only bounds a lost reply
)

// setRef names a set and how its keys look.
type setRef struct {
	family byte // NFPROTO_IPV4 or NFPROTO_IPV6
	table  string
	set    string
	keyLen int
}

// conn is a netlink socket for set elements.
type conn struct {
	nl     *netlink.Conn
	raw    syscall.RawConn
	netns  int
	seq    uint32
	sndbuf int
	rbuf   []byte
}

func dial(netns int) (*conn, error) {
	nl, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: netns})
	if err != nil {
		return nil, fmt.Errorf("open netlink socket: %w", err)
	}
	// Errors carry only the failed message's header, not its payload,
	// which can be 64 KiB per message.
	if err := nl.SetOption(netlink.CapAcknowledge, true); err != nil {
		_ = nl.Close()
		return nil, fmt.Errorf("set NETLINK_CAP_ACK: %w", err)
	}
	raw, err := nl.SyscallConn()
	if err != nil {
		_ = nl.Close()
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	c := &conn{nl: nl, raw: raw, netns: netns, seq: uint32(time.Now().UnixNano()), rbuf: make([]byte, recvBufSize)}
	// Room for thousands of acknowledgements; best effort.
	_ = c.setsockopt(unix.SO_RCVBUFFORCE, 4<<20)
	return c, nil
}

func (c *conn) close() error { return c.nl.Close() }

func (c *conn) nextSeq() uint32 {
	c.seq++
	return c.seq
}

func (c *conn) setsockopt(opt, v int) error {
	var serr error
	if err := c.raw.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, opt, v) }); err != nil {
		return err
	}
	return serr
}

// reserve makes the send buffer hold a batch of n bytes: netlink refuses a
// message larger than the buffer ("message too long").
func (c *conn) reserve(n int) error {
	want := n + 64<<10
	if want <= c.sndbuf {
		return nil
	}
	if err := c.setsockopt(unix.SO_SNDBUFFORCE, want); err != nil {
		// Without CAP_NET_ADMIN: the ordinary option, capped by wmem_max.
		if err := c.setsockopt(unix.SO_SNDBUF, want); err != nil {
			return fmt.Errorf("grow netlink send buffer to %d bytes: %w", want, err)
		}
	}
	var got int
	var gerr error
	if err := c.raw.Control(func(fd uintptr) { got, gerr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF) }); err != nil {
		return err
	}
	if gerr != nil {
		return fmt.Errorf("read netlink send buffer size: %w", gerr)
	}
	c.sndbuf = got
	if got < n+64 {
		return fmt.Errorf("batch of %d bytes exceeds the netlink send buffer (%d bytes); raise net.core.wmem_max", n, got)
	}
	return nil
}

// msgBuf holds encoded element messages.
type msgBuf struct {
	b      []byte
	spans  []msgSpan
	open   bool
	set    *setRef // of the open message
	hdr    int     // offset of the open message
	list   int     // offset of its element list attribute
	points int     // elements written
}

type msgSpan struct {
	off, end int
	seq      uint32
}

func (m *msgBuf) reset() {
	m.b, m.spans, m.open, m.set, m.points = m.b[:0], m.spans[:0], false, nil, 0
}

func (m *msgBuf) len() int { return len(m.b) }

func putHdr(b []byte, l int, typ uint16) []byte {
	b = binary.NativeEndian.AppendUint16(b, uint16(l))
	return binary.NativeEndian.AppendUint16(b, typ)
}

func putStrAttr(b []byte, typ uint16, s string) []byte {
	b = putHdr(b, 4+len(s)+1, typ)
	b = append(b, s...)
	b = append(b, 0)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// beginMsg starts a netlink message of the nftables subsystem with the
// table and set attributes; it returns the new buffer and the message's
// offset.
func beginMsg(b []byte, typ uint16, flags uint16, seq uint32, s *setRef) ([]byte, int) {
	off := len(b)
	b = binary.NativeEndian.AppendUint32(b, 0) // length, patched later
	b = binary.NativeEndian.AppendUint16(b, subsysNFTables<<8|typ)
	b = binary.NativeEndian.AppendUint16(b, flags)
	b = binary.NativeEndian.AppendUint32(b, seq)
	b = binary.NativeEndian.AppendUint32(b, 0) // port id: the kernel's
	b = append(b, s.family, unix.NFNETLINK_V0, 0, 0)
	b = putStrAttr(b, unix.NFTA_SET_ELEM_LIST_TABLE, s.table)
	b = putStrAttr(b, unix.NFTA_SET_ELEM_LIST_SET, s.set)
	return b, off
}

func endMsg(b []byte, off int) {
	binary.NativeEndian.PutUint32(b[off:], uint32(len(b)-off))
}

func (m *msgBuf) start(c *conn, typ uint16, s *setRef) {
	m.end()
	seq := c.nextSeq()
	m.b, m.hdr = beginMsg(m.b, typ, unix.NLM_F_REQUEST, seq, s)
	m.list = len(m.b)
	m.b = putHdr(m.b, 0, unix.NFTA_SET_ELEM_LIST_ELEMENTS|unix.NLA_F_NESTED)
	m.spans = append(m.spans, msgSpan{off: m.hdr, seq: seq})
	m.open, m.set = true, s
}

func (m *msgBuf) end() {
	if !m.open {
		return
	}
	binary.NativeEndian.PutUint16(m.b[m.list:], uint16(len(m.b)-m.list))
	endMsg(m.b, m.hdr)
	m.spans[len(m.spans)-1].end = len(m.b)
	m.open = false
}

// point appends one element: a host or an interval start (with a timeout
// when ms is not 0), or an interval end. own puts it in a message of its
// own.
func point[A addr[A]](m *msgBuf, c *conn, typ uint16, s *setRef, key A, isEnd bool, ms uint64, own bool) {
	const maxPoint = 4 + 8 + 16 + 8 + 12
	if !m.open || m.set != s || own || len(m.b)-m.list+maxPoint > maxListBytes {
		m.start(c, typ, s)
	}
	b := m.b
	e := len(b)
	b = append(b, 0, 0, 0, 0)
	b = putHdr(b, 8+s.keyLen, unix.NFTA_SET_ELEM_KEY|unix.NLA_F_NESTED)
	b = putHdr(b, 4+s.keyLen, unix.NFTA_DATA_VALUE)
	b = key.appendKey(b)
	if isEnd {
		b = putHdr(b, 8, unix.NFTA_SET_ELEM_FLAGS)
		b = binary.BigEndian.AppendUint32(b, unix.NFT_SET_ELEM_INTERVAL_END)
	}
	if ms > 0 {
		b = putHdr(b, 12, unix.NFTA_SET_ELEM_TIMEOUT)
		b = binary.BigEndian.AppendUint64(b, ms)
	}
	binary.NativeEndian.PutUint16(b[e:], uint16(len(b)-e))
	binary.NativeEndian.PutUint16(b[e+2:], unix.NFTA_LIST_ELEM|unix.NLA_F_NESTED)
	m.b = b
	m.points++
	if own {
		m.end()
	}
}

// putAdd writes the start (with the timeout) and, below the top of the
// address space, the end of an interval. Start before end: the kernel
// checks each element against its closest neighbours, and an end sent
// first collides with the end of any interval below it.
func putAdd[A addr[A]](m *msgBuf, c *conn, s *setRef, o op[A]) {
	point(m, c, msgNewSetElem, s, o.first, false, o.ms, false)
	if !o.last.isMax() {
		point(m, c, msgNewSetElem, s, o.last.next(), true, 0, false)
	}
}

// putHost writes one element of a host set: an add with a timeout of ms
// milliseconds, or a delete when ms is 0.
func putHost[A addr[A]](m *msgBuf, c *conn, typ uint16, s *setRef, key A, ms uint64, own bool) {
	point(m, c, typ, s, key, false, ms, own)
}

func putDel[A addr[A]](m *msgBuf, c *conn, typ uint16, s *setRef, o op[A], own bool) {
	point(m, c, typ, s, o.first, false, 0, own)
	if !o.last.isMax() {
		point(m, c, typ, s, o.last.next(), true, 0, own)
	}
}

// without returns the messages of m whose sequence number is not in drop.
func (m *msgBuf) without(drop map[uint32]bool) msgBuf {
	m.end()
	var out msgBuf
	for _, sp := range m.spans {
		if drop[sp.seq] {
			continue
		}
		off := len(out.b)
		out.b = append(out.b, m.b[sp.off:sp.end]...)
		out.spans = append(out.spans, msgSpan{off: off, end: len(out.b), seq: sp.seq})
	}
	return out
}

// ackLast asks for an acknowledgement of the last message.
func (m *msgBuf) ackLast() {
	sp := m.spans[len(m.spans)-1]
	binary.NativeEndian.PutUint16(m.b[sp.off+6:], unix.NLM_F_REQUEST|unix.NLM_F_ACK)
}

// txn is one netlink transaction on one or more sets: flushes, then
// deletes, then adds. The kernel applies it atomically.
type txn struct {
	flush []*setRef
	dels  msgBuf
	adds  msgBuf
}

func (t *txn) size() int { return t.dels.len() + t.adds.len() }

func (t *txn) points() int { return t.dels.points + t.adds.points }

func (t *txn) reset() {
	t.flush = t.flush[:0]
	t.dels.reset()
	t.adds.reset()
}

// msgError is the kernel's answer to one message of a batch.
type msgError struct {
	seq   uint32
	errno unix.Errno
}

// txnError reports the messages of a transaction the kernel refused; the
// whole transaction was rolled back.
type txnError struct {
	errs []msgError
	msgs int
}

func (e *txnError) Error() string {
	return fmt.Sprintf("kernel refused %d of %d messages: %v", len(e.errs), e.msgs, e.errs[0].errno)
}

func (e *txnError) Unwrap() error { return e.errs[0].errno }

// commit sends t as one batch and collects the kernel's answers.
//
// Only the last message asks for an acknowledgement. The kernel handles a
// batch inside sendmsg, reports every failed message whether or not it
// asked, and queues its answers in message order, so reading up to the
// last message's answer collects every error. Thousands of
// acknowledgements would otherwise overflow the receive buffer (ENOBUFS).
func (c *conn) commit(ctx context.Context, t *txn) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	t.dels.end()
	t.adds.end()
	if t.dels.len() == 0 && t.adds.len() == 0 && len(t.flush) == 0 {
		return nil
	}
	beginSeq := c.nextSeq()
	head := batchMsg(nil, unix.NFNL_MSG_BATCH_BEGIN, beginSeq)
	msgs := len(t.dels.spans) + len(t.adds.spans)
	var lastSeq uint32
	for _, s := range t.flush {
		// A delete without an element list empties the set.
		var off int
		lastSeq = c.nextSeq()
		head, off = beginMsg(head, msgDelSetElem, unix.NLM_F_REQUEST, lastSeq, s)
		endMsg(head, off)
		msgs++
	}
	for _, m := range []*msgBuf{&t.dels, &t.adds} {
		for _, sp := range m.spans {
			binary.NativeEndian.PutUint16(m.b[sp.off+6:], unix.NLM_F_REQUEST)
			lastSeq = sp.seq
		}
	}
	switch {
	case len(t.adds.spans) > 0:
		t.adds.ackLast()
	case len(t.dels.spans) > 0:
		t.dels.ackLast()
	default:
		// Only flushes: acknowledge the last one.
		last := len(head)
		for off := nlmsgHdrLen + 4; off < len(head); off += int(binary.NativeEndian.Uint32(head[off:])) {
			last = off
		}
		binary.NativeEndian.PutUint16(head[last+6:], unix.NLM_F_REQUEST|unix.NLM_F_ACK)
	}
	tailSeq := c.nextSeq()
	tail := batchMsg(nil, unix.NFNL_MSG_BATCH_END, tailSeq)
	bufs := [][]byte{head, t.dels.b, t.adds.b, tail}
	total := len(head) + t.dels.len() + t.adds.len() + len(tail)
	if err := c.reserve(total); err != nil {
		return err
	}
	var serr error
	werr := c.raw.Write(func(fd uintptr) bool {
		_, serr = unix.SendmsgBuffers(int(fd), bufs, nil, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}, 0)
		return serr != unix.EAGAIN
	})
	if werr != nil {
		return fmt.Errorf("send batch: %w", werr)
	}
	if serr != nil {
		return fmt.Errorf("send batch of %d bytes: %w", total, serr)
	}
	var errs []msgError
	err := c.receive(ctx, func(h unix.NlMsghdr, data []byte) (bool, error) {
		if h.Type != unix.NLMSG_ERROR {
			return false, nil
		}
		if len(data) < 4+nlmsgHdrLen {
			return false, errors.New("short netlink error message")
		}
		errno := unix.Errno(-int32(binary.NativeEndian.Uint32(data)))
		seq := binary.NativeEndian.Uint32(data[4+8:])
		if seq == beginSeq || seq == tailSeq {
			// About the batch itself: no per-message answers follow.
			return true, fmt.Errorf("kernel refused the batch: %w", errno)
		}
		if errno != 0 {
			errs = append(errs, msgError{seq, errno})
		}
		return seq == lastSeq, nil
	})
	if err != nil {
		if errors.Is(err, unix.ENOBUFS) {
			err = fmt.Errorf("%w (too many errors to read back: %d so far)", err, len(errs))
		}
		return err
	}
	if len(errs) > 0 {
		return &txnError{errs: errs, msgs: msgs}
	}
	return nil
}

func batchMsg(b []byte, typ uint16, seq uint32) []byte {
	b = binary.NativeEndian.AppendUint32(b, nlmsgHdrLen+4)
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = binary.NativeEndian.AppendUint16(b, unix.NLM_F_REQUEST)
	b = binary.NativeEndian.AppendUint32(b, seq)
	b = binary.NativeEndian.AppendUint32(b, 0)
	return append(b, unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, subsysNFTables)
}

// receive reads netlink messages and hands each to fn until fn reports
// done or fails.
func (c *conn) receive(ctx context.Context, fn func(h unix.NlMsghdr, data []byte) (bool, error)) error {
	deadline := time.Now().Add(ackTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := c.nl.SetReadDeadline(deadline); err != nil {
		return fmt.Errorf("set netlink deadline: %w", err)
	}
	defer func() { _ = c.nl.SetReadDeadline(time.Time{}) }()
	for {
		var n int
		var rerr error
		if err := c.raw.Read(func(fd uintptr) bool {
			n, _, rerr = unix.Recvfrom(int(fd), c.rbuf, 0)
			return rerr != unix.EAGAIN
		}); err != nil {
			return fmt.Errorf("receive from netlink: %w", err)
		}
		if rerr != nil {
			return fmt.Errorf("receive from netlink: %w", rerr)
		}
		b := c.rbuf[:n]
		for len(b) >= nlmsgHdrLen {
			var h unix.NlMsghdr
			h.Len = binary.NativeEndian.Uint32(b)
			h.Type = binary.NativeEndian.Uint16(b[4:])
			h.Flags = binary.NativeEndian.Uint16(b[6:])
			h.Seq = binary.NativeEndian.Uint32(b[8:])
			if h.Len < nlmsgHdrLen || int(h.Len) > len(b) {
				return errors.New("malformed netlink message")
			}
			done, err := fn(h, b[nlmsgHdrLen:h.Len])
			if err != nil || done {
				return err
			}
			b = b[min(len(b), int((h.Len+3)&^3)):]
		}
	}
}

// destroySupported asks the kernel whether it knows "destroy element"
// (Linux 6.3) with a batch that cannot change anything: a destroy in a set
// that does not exist.
func (c *conn) destroySupported(ctx context.Context, table string, family byte) (bool, error) {
	probe := &setRef{family: family, table: table, set: "rampart-probe-absent-set", keyLen: 4}
	var t txn
	t.dels.start(c, msgDestroySetElm, probe)
	err := c.commit(ctx, &t)
	switch {
	case errors.Is(err, unix.ENOENT), err == nil:
		return true, nil
	case errors.Is(err, unix.EINVAL), errors.Is(err, unix.EOPNOTSUPP):
		return false, nil
	}
	return false, fmt.Errorf("probe for destroy support: %w", err)
}

// empty reports whether the set holds no element, reading only the start
// of a dump on a socket of its own. Dumping a whole set is quadratic in
// the kernel (measured: 100k elements 0.6 s, 300k 9.5 s), so nothing here
// ever reads one to the end.
func empty(ctx context.Context, netns int, s *setRef) (bool, error) {
	c, err := dial(netns)
	if err != nil {
		return false, err
	}
	defer c.close()
	var b []byte
	b, off := beginMsg(b, msgGetSetElem, unix.NLM_F_REQUEST|unix.NLM_F_DUMP, c.nextSeq(), s)
	endMsg(b, off)
	var serr error
	if err := c.raw.Write(func(fd uintptr) bool {
		serr = unix.Sendto(int(fd), b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		return serr != unix.EAGAIN
	}); err != nil {
		return false, err
	}
	if serr != nil {
		return false, fmt.Errorf("request set dump: %w", serr)
	}
	isEmpty := true
	err = c.receive(ctx, func(h unix.NlMsghdr, data []byte) (bool, error) {
		switch h.Type {
		case unix.NLMSG_DONE:
			return true, nil
		case unix.NLMSG_ERROR:
			if len(data) >= 4 {
				if errno := unix.Errno(-int32(binary.NativeEndian.Uint32(data))); errno != 0 {
					return true, errno
				}
			}
			return true, nil
		case subsysNFTables<<8 | msgNewSetElem:
			if hasElements(data) {
				isEmpty = false
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return false, fmt.Errorf("dump set %s: %w", s.set, err)
	}
	return isEmpty, nil
}

// hasElements reports whether a set element message lists any element.
func hasElements(data []byte) bool {
	if len(data) < 4 {
		return false
	}
	b := data[4:]
	for len(b) >= 4 {
		l := int(binary.NativeEndian.Uint16(b))
		typ := binary.NativeEndian.Uint16(b[2:]) &^ (unix.NLA_F_NESTED | unix.NLA_F_NET_BYTEORDER)
		if l < 4 || l > len(b) {
			return false
		}
		if typ == unix.NFTA_SET_ELEM_LIST_ELEMENTS && l > 4 {
			return true
		}
		b = b[min(len(b), (l+3)&^3):]
	}
	return false
}

// generation returns the ruleset's generation, which every committed
// transaction changes (ours and anyone's, element changes included) and
// kernel expiries do not. One small message, where a full check of our
// objects takes a dozen dumps.
func (c *conn) generation(ctx context.Context) (uint32, error) {
	seq := c.nextSeq()
	b := binary.NativeEndian.AppendUint32(nil, nlmsgHdrLen+4)
	b = binary.NativeEndian.AppendUint16(b, subsysNFTables<<8|unix.NFT_MSG_GETGEN)
	b = binary.NativeEndian.AppendUint16(b, unix.NLM_F_REQUEST)
	b = binary.NativeEndian.AppendUint32(b, seq)
	b = binary.NativeEndian.AppendUint32(b, 0)
	b = append(b, unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, 0)
	var serr error
	if err := c.raw.Write(func(fd uintptr) bool {
		serr = unix.Sendto(int(fd), b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		return serr != unix.EAGAIN
	}); err != nil {
		return 0, fmt.Errorf("ask the ruleset generation: %w", err)
	}
	if serr != nil {
		return 0, fmt.Errorf("ask the ruleset generation: %w", serr)
	}
	var gen uint32
	found := false
	err := c.receive(ctx, func(h unix.NlMsghdr, data []byte) (bool, error) {
		if h.Seq != seq {
			return false, nil // a late answer to an earlier request
		}
		switch h.Type {
		case unix.NLMSG_ERROR:
			if len(data) >= 4 {
				if errno := unix.Errno(-int32(binary.NativeEndian.Uint32(data))); errno != 0 {
					return true, errno
				}
			}
			return true, nil
		case subsysNFTables<<8 | unix.NFT_MSG_NEWGEN:
			if len(data) < 4 {
				return true, errors.New("short generation message")
			}
			for a := data[4:]; len(a) >= 4; {
				l := int(binary.NativeEndian.Uint16(a))
				typ := binary.NativeEndian.Uint16(a[2:]) &^ (unix.NLA_F_NESTED | unix.NLA_F_NET_BYTEORDER)
				if l < 4 || l > len(a) {
					break
				}
				if typ == unix.NFTA_GEN_ID && l >= 8 {
					gen, found = binary.BigEndian.Uint32(a[4:]), true
				}
				a = a[min(len(a), (l+3)&^3):]
			}
			return true, nil
		}
		return false, nil
	})
	if err != nil {
		return 0, fmt.Errorf("read the ruleset generation: %w", err)
	}
	if !found {
		return 0, errors.New("read the ruleset generation: no generation in the answer")
	}
	return gen, nil
}
