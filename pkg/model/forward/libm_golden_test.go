package forward

// libmGolden are results of glibc 2.36's expf and sincosf (x86-64, FMA
// variants) that differ from the correctly rounded value, captured by
// TestLibmGoldenCapture (llamacpp tag, -update).
var libmGolden = []struct {
	fn      string
	x, want uint32
}{
	{"expf", 0x3f801252, 0x402e113d},
	{"expf", 0x3f80171b, 0x402e17bf},
	{"expf", 0x3f801ab2, 0x402e1ca1},
	{"expf", 0x3f8038c4, 0x402e458d},
	{"expf", 0x3f803d48, 0x402e4bb3},
	{"expf", 0x3f803e33, 0x402e4cf3},
	{"expf", 0x3f804574, 0x402e56d4},
	{"expf", 0x3f805217, 0x402e680b},
	{"sinf", 0x404000db, 0x3e107437},
	{"sinf", 0x40400201, 0x3e106206},
	{"sinf", 0x4040021a, 0x3e10607a},
	{"sinf", 0x40400233, 0x3e105eee},
	{"sinf", 0x4040024c, 0x3e105d62},
	{"sinf", 0x404002c3, 0x3e105605},
	{"sinf", 0x404002dc, 0x3e105479},
	{"sinf", 0x404002f5, 0x3e1052ed},
	{"cosf", 0x40400b85, 0xbf7d76a3},
	{"cosf", 0x40401c84, 0xbf7d8026},
	{"cosf", 0x40401ebb, 0xbf7d8162},
	{"cosf", 0x40402b1b, 0xbf7d8842},
	{"cosf", 0x40402d52, 0xbf7d897c},
	{"cosf", 0x40403013, 0xbf7d8b02},
	{"cosf", 0x404030da, 0xbf7d8b70},
	{"cosf", 0x40403126, 0xbf7d8b9a},
}
