package exprhelpers

import (
	"strings"
	"sync"

	"github.com/antchfx/xmlquery"
	"github.com/antchfx/xpath"
	log "github.com/sirupsen/logrus"
)

// XML helpers (windows-logs, exchange-imap-bf, mssql-text-logs):
// XMLGetAttributeValue and XMLGetNodeValue query an XML document with an
// XPath expression, as upstream does with antchfx/xmlquery. Bad XML, a bad
// path or no match give "" (upstream logs and returns "").

// maxXPaths bounds the compiled-XPath cache; hub rules use a few dozen.
const maxXPaths = 1024

// xmlDocs is how many parsed documents are kept: a Windows event's
// parser calls the helpers ~10 times on the same evt.Line.Raw, so the
// last few documents (one per worker) cover those calls.
const xmlDocs = 8

// xmlState holds the XPath and document caches of one *Helpers.
type xmlState struct {
	paths     sync.Map // path -> *xpath.Expr (nil when invalid)
	pathsSize sync.Mutex
	nPaths    int

	mu   sync.Mutex
	docs [xmlDocs]struct {
		src string
		doc *xmlquery.Node
	}
	next int
}

func (x *xmlState) expr(path string) *xpath.Expr {
	if v, ok := x.paths.Load(path); ok {
		e, _ := v.(*xpath.Expr)
		return e
	}
	e, err := xpath.Compile(path)
	if err != nil {
		log.WithField("path", path).WithError(err).Warn("XML helper: invalid XPath")
		e = nil
	}
	x.pathsSize.Lock()
	if x.nPaths < maxXPaths {
		x.paths.Store(path, e)
		x.nPaths++
	}
	x.pathsSize.Unlock()
	return e
}

// doc parses src, or returns the document parsed from the same string by
// a recent call. Parsed documents are only read afterwards, so sharing
// them between goroutines is safe.
func (x *xmlState) doc(src string) *xmlquery.Node {
	x.mu.Lock()
	for i := range x.docs {
		if x.docs[i].doc != nil && x.docs[i].src == src {
			d := x.docs[i].doc
			x.mu.Unlock()
			return d
		}
	}
	x.mu.Unlock()
	d, err := xmlquery.Parse(strings.NewReader(src))
	if err != nil {
		log.WithError(err).Debug("XML helper: cannot parse document")
		return nil
	}
	x.mu.Lock()
	x.docs[x.next] = struct {
		src string
		doc *xmlquery.Node
	}{src, d}
	x.next = (x.next + 1) % xmlDocs
	x.mu.Unlock()
	return d
}

func (x *xmlState) node(src, path string) *xmlquery.Node {
	e := x.expr(path)
	if e == nil {
		return nil
	}
	d := x.doc(src)
	if d == nil {
		return nil
	}
	return xmlquery.QuerySelector(d, e)
}

// XMLGetAttributeValue returns the attribute attr of the first node of
// xmlString matching the XPath path; "" when anything is missing.
func (h *Helpers) XMLGetAttributeValue(xmlString, path, attr string) string {
	n := h.ext().xml.node(xmlString, path)
	if n == nil {
		return ""
	}
	for _, a := range n.Attr {
		if a.Name.Local == attr {
			return a.Value
		}
	}
	return ""
}

// XMLGetNodeValue returns the text of the first node of xmlString
// matching the XPath path; "" when there is none.
func (h *Helpers) XMLGetNodeValue(xmlString, path string) string {
	n := h.ext().xml.node(xmlString, path)
	if n == nil {
		return ""
	}
	return n.InnerText()
}
