#include "textflag.h"

// Each stub loads its one argument and prefetches the line it points into.

// func prefetchInt32(p *int32)
TEXT ·prefetchInt32(SB), NOSPLIT|NOFRAME, $0-8
	MOVQ p+0(FP), AX
	PREFETCHT0 (AX)
	RET

// func prefetchLink(p **order)
TEXT ·prefetchLink(SB), NOSPLIT|NOFRAME, $0-8
	MOVQ p+0(FP), AX
	PREFETCHT0 (AX)
	RET

// func prefetchOrderHead(o *order)
TEXT ·prefetchOrderHead(SB), NOSPLIT|NOFRAME, $0-8
	MOVQ o+0(FP), AX
	PREFETCHT0 (AX)
	RET

// func prefetchLevel(l *level)
TEXT ·prefetchLevel(SB), NOSPLIT|NOFRAME, $0-8
	MOVQ l+0(FP), AX
	PREFETCHT0 (AX)
	RET
