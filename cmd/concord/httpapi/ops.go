package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/concord-p2p/concord"
	"github.com/concord-p2p/concord/crdt"
)

// opBody is one op of a POST /v1/docs/{doc}/ops batch.
type opBody struct {
	Op    string          `json:"op"`
	Path  json.RawMessage `json:"path"`
	Value json.RawMessage `json:"value"`
	By    json.RawMessage `json:"by"`
	// splice
	Index  json.RawMessage `json:"index"`
	Delete json.RawMessage `json:"delete"`
	Text   *string         `json:"text"`
	Values json.RawMessage `json:"values"`
	// Base (a splice's, optional) is the number of the change whose view
	// the splice was made on; the peer rebases it over later changes.
	Base json.RawMessage `json:"base"`
}

// errBadOps marks a batch that does not decode; it is answered with 400.
var errBadOps = errors.New("bad ops")

func (a *API) postOps(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body over %d bytes", MaxBodyBytes))
			return
		}
		writeError(w, http.StatusBadRequest, "read body: "+err.Error())
		return
	}
	ops, bases, err := decodeBatch(body)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	d, ok := a.doc(w, r)
	if !ok {
		return
	}
	n, err := d.Commit(r.Context(), func(tx *concord.Txn) {
		for i, op := range ops {
			tx.OpAt(bases[i], op)
		}
	})
	if err != nil {
		writeError(w, statusOf(err), err.Error())
		return
	}
	v := viewOf(d)
	v.N = n // the change that holds the batch
	writeJSON(w, http.StatusOK, v)
}

// DecodeOps decodes a batch: a non-empty JSON list of ops
//
//	{"op":"set","path":[...],"value":<json>}   {"op":"delete","path":[...]}
//	{"op":"inc","path":[...],"by":<int>}       {"op":"add","path":[...],"value":<scalar>}
//	{"op":"remove","path":[...],"value":<scalar>}
//	{"op":"splice","path":[...],"index":i,"delete":n,"text":"..."}
//	{"op":"splice","path":[...],"index":i,"delete":n,"values":[...]}
//
// where a path is a non-empty list of strings. Errors wrap errBadOps and
// name the op by index. Type checks against the document (inc on a
// register, ...) are left to Doc.Apply. A splice's "base" is checked, not
// returned (see decodeBatch).
func DecodeOps(body []byte) ([]crdt.Op, error) {
	ops, _, err := decodeBatch(body)
	return ops, err
}

// decodeBatch decodes a batch and the base of each op (0: none).
func decodeBatch(body []byte) ([]crdt.Op, []uint64, error) {
	body = bytes.TrimSpace(body)
	if !json.Valid(body) {
		return nil, nil, fmt.Errorf("%w: body is not valid JSON", errBadOps)
	}
	// Checked on the whole body, before decoding: encoding/json would
	// silently turn invalid UTF-8 or an escaped lone surrogate in a path
	// key into U+FFFD.
	if err := crdt.CheckJSONText(body); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", errBadOps, err)
	}
	if len(body) == 0 || body[0] != '[' {
		return nil, nil, fmt.Errorf("%w: body must be a JSON list of ops", errBadOps)
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, nil, fmt.Errorf("%w: body must be a JSON list of ops: %v", errBadOps, err)
	}
	if len(raw) == 0 {
		return nil, nil, fmt.Errorf("%w: empty list of ops", errBadOps)
	}
	ops := make([]crdt.Op, 0, len(raw))
	bases := make([]uint64, 0, len(raw))
	for i, m := range raw {
		op, base, err := decodeOp(m)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: op %d: %v", errBadOps, i, err)
		}
		ops = append(ops, op)
		bases = append(bases, base)
	}
	return ops, bases, nil
}

func decodeOp(m json.RawMessage) (crdt.Op, uint64, error) {
	var b opBody
	dec := json.NewDecoder(bytes.NewReader(m))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		return crdt.Op{}, 0, fmt.Errorf("not an op object: %v", err)
	}
	var base uint64
	if b.Base != nil {
		if b.Op != "splice" {
			return crdt.Op{}, 0, fmt.Errorf("%q takes no \"base\" (only a splice does)", b.Op)
		}
		if json.Unmarshal(b.Base, &base) != nil || base == 0 {
			return crdt.Op{}, 0, errors.New(`"base" must be a positive integer (a change number)`)
		}
	}
	op, err := decodeOpBody(b)
	return op, base, err
}

func decodeOpBody(b opBody) (crdt.Op, error) {
	path, err := decodePath(b.Path)
	if err != nil {
		return crdt.Op{}, err
	}
	switch b.Op {
	case "set":
		if b.Value == nil {
			return crdt.Op{}, errors.New(`"set" needs a "value"`)
		}
		return crdt.Set(path, b.Value), nil
	case "delete":
		return crdt.Delete(path), nil
	case "inc":
		var by int64
		if b.By == nil || json.Unmarshal(b.By, &by) != nil {
			return crdt.Op{}, errors.New(`"inc" needs an integer "by"`)
		}
		return crdt.Inc(path, by), nil
	case "add", "remove":
		if err := checkScalar(b.Value); err != nil {
			return crdt.Op{}, fmt.Errorf("%q: %v", b.Op, err)
		}
		if b.Op == "add" {
			return crdt.Add(path, b.Value), nil
		}
		return crdt.Remove(path, b.Value), nil
	case "splice":
		return decodeSplice(path, b)
	case "":
		return crdt.Op{}, errors.New(`missing "op"`)
	default:
		return crdt.Op{}, fmt.Errorf("unknown op %q (want set, delete, inc, add, remove or splice)", b.Op)
	}
}

// decodeSplice reads a splice: a text one with "text", a list one with
// "values", a pure delete in whichever sequence the path holds with
// neither. Index and length checks against the document are Doc.Apply's
// (409).
func decodeSplice(path []string, b opBody) (crdt.Op, error) {
	var index, del int
	if b.Index == nil || string(b.Index) == "null" || json.Unmarshal(b.Index, &index) != nil || index < 0 {
		return crdt.Op{}, errors.New(`"splice" needs a non-negative integer "index"`)
	}
	if b.Delete != nil && (string(b.Delete) == "null" || json.Unmarshal(b.Delete, &del) != nil || del < 0) {
		return crdt.Op{}, errors.New(`"delete" must be a non-negative integer`)
	}
	if b.Value != nil || b.By != nil {
		return crdt.Op{}, errors.New(`"splice" takes "text" or "values", not "value" or "by"`)
	}
	switch {
	case b.Text != nil && b.Values != nil:
		return crdt.Op{}, errors.New(`"splice" takes "text" or "values", not both`)
	case b.Text != nil:
		return crdt.Splice(path, index, del, *b.Text), nil
	case b.Values != nil:
		var vs []json.RawMessage
		if err := json.Unmarshal(b.Values, &vs); err != nil || vs == nil {
			return crdt.Op{}, errors.New(`"values" must be a JSON list`)
		}
		return crdt.SpliceList(path, index, del, vs...), nil
	}
	return crdt.SpliceDelete(path, index, del), nil
}

func decodePath(raw json.RawMessage) ([]string, error) {
	var path []string
	if raw == nil || json.Unmarshal(raw, &path) != nil || len(path) == 0 {
		return nil, errors.New(`"path" must be a non-empty list of strings`)
	}
	return path, nil
}

// checkScalar accepts a JSON string, number, boolean or null.
func checkScalar(v json.RawMessage) error {
	if v == nil {
		return errors.New(`needs a "value"`)
	}
	switch bytes.TrimSpace(v)[0] {
	case '{', '[':
		return errors.New(`"value" must be a JSON scalar (string, number, boolean)`)
	}
	return nil
}
