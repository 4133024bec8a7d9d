package net

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestParsePSK(t *testing.T) {
	const hexKey = "a3f1c0de00112233445566778899aabbccddeeff00112233445566778899aabb"
	want := []byte{0xa3, 0xf1, 0xc0, 0xde}
	cases := []struct {
		name, in string
		ok       bool
		msg      string // substring of the error
	}{
		{"plain", "/key/swarm/psk/1.0.0/\n/base16/\n" + hexKey + "\n", true, ""},
		{"no final newline", "/key/swarm/psk/1.0.0/\n/base16/\n" + hexKey, true, ""},
		{"crlf", "/key/swarm/psk/1.0.0/\r\n/base16/\r\n" + hexKey + "\r\n", true, ""},
		{"uppercase hex", "/key/swarm/psk/1.0.0/\n/base16/\n" + strings.ToUpper(hexKey) + "\n\n", true, ""},
		{"empty", "", false, "empty"},
		{"wrong header", "/key/swarm/psk/2.0.0/\n/base16/\n" + hexKey, false, "line 1"},
		{"missing encoding", "/key/swarm/psk/1.0.0/\n", false, "missing encoding"},
		{"base64", "/key/swarm/psk/1.0.0/\n/base64/\n" + hexKey, false, "only \"/base16/\""},
		{"missing key", "/key/swarm/psk/1.0.0/\n/base16/\n", false, "missing key"},
		{"short key", "/key/swarm/psk/1.0.0/\n/base16/\n" + hexKey[:62], false, "62 characters"},
		{"long key", "/key/swarm/psk/1.0.0/\n/base16/\n" + hexKey + "00", false, "66 characters"},
		{"not hex", "/key/swarm/psk/1.0.0/\n/base16/\n" + strings.Repeat("zz", 32), false, "not hex"},
		{"trailing garbage", "/key/swarm/psk/1.0.0/\n/base16/\n" + hexKey + "\nextra\n", false, "after the key"},
		{"huge", strings.Repeat("x", 5000), false, "larger than"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			psk, err := ParsePSK(strings.NewReader(c.in))
			if c.ok {
				if err != nil {
					t.Fatal(err)
				}
				if len(psk) != 32 || !bytes.Equal(psk[:4], want) {
					t.Fatalf("psk = %x", psk)
				}
				back, err := ParsePSK(bytes.NewReader(FormatPSK(psk)))
				if err != nil || !bytes.Equal(back, psk) {
					t.Fatalf("FormatPSK round trip: %x %v", back, err)
				}
				return
			}
			if !errors.Is(err, ErrBadPSK) || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("err = %v, want ErrBadPSK mentioning %q", err, c.msg)
			}
		})
	}
}
