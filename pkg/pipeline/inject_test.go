package pipeline

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseInjection(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Injection
		err  string
	}{
		{in: "ffn_up-1:scale=1.01", want: Injection{Name: "ffn_up-1", Nth: 1, Kind: "scale", Value: 1.01}},
		{in: "Qcur-0#2:swap", want: Injection{Name: "Qcur-0", Nth: 2, Kind: "swap"}},
		{in: "inp_embd:shift", want: Injection{Name: "inp_embd", Nth: 1, Kind: "shift"}},
		{in: "attn_norm-0:add=-0.5", want: Injection{Name: "attn_norm-0", Nth: 1, Kind: "add", Value: -0.5}},
		{in: "kq-0:transpose", want: Injection{Name: "kq-0", Nth: 1, Kind: "transpose"}},
		{in: "l_out-0:sign", want: Injection{Name: "l_out-0", Nth: 1, Kind: "sign"}},
		{in: "ffn_up-1", err: "want NAME:KIND"},
		{in: ":scale=2", err: "want NAME:KIND"},
		{in: "x:scale", err: "needs a value"},
		{in: "x:scale=abc", err: "not a finite number"},
		{in: "x:scale=NaN", err: "not a finite number"},
		{in: "x:swap=1", err: "takes no value"},
		{in: "x:rotate", err: "unknown kind"},
		{in: "x#0:sign", err: "not a positive number"},
	} {
		got, err := ParseInjection(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseInjection(%q) error = %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseInjection(%q): %v", tc.in, err)
			continue
		}
		if d := cmp.Diff(tc.want, got); d != "" {
			t.Errorf("ParseInjection(%q) (-want +got):\n%s", tc.in, d)
		}
		if again, _ := ParseInjection(got.String()); again != got {
			t.Errorf("String() %q does not round-trip", got.String())
		}
	}
}

func TestInjectionApply(t *testing.T) {
	ne := [4]int64{4, 2, 1, 1}
	base := func() []float32 { return []float32{1, 2, 3, 4, 5, 6, 7, 8} }
	for _, tc := range []struct {
		inj  Injection
		want []float32
	}{
		{Injection{Kind: "scale", Value: 2}, []float32{2, 4, 6, 8, 10, 12, 14, 16}},
		{Injection{Kind: "add", Value: 1}, []float32{2, 3, 4, 5, 6, 7, 8, 9}},
		{Injection{Kind: "sign"}, []float32{-1, -2, -3, -4, -5, -6, -7, -8}},
		{Injection{Kind: "swap"}, []float32{3, 4, 1, 2, 7, 8, 5, 6}},
		{Injection{Kind: "transpose"}, []float32{1, 5, 2, 6, 3, 7, 4, 8}},
		{Injection{Kind: "shift"}, []float32{1, 2, 3, 4, 1, 2, 3, 4}},
	} {
		d := base()
		tc.inj.Apply(d, ne)
		if diff := cmp.Diff(tc.want, d); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.inj.Kind, diff)
		}
	}
}
