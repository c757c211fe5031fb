package cli

import (
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// progress shows a long operation's progress: a bar redrawn in place on a
// terminal, a plain line for each change otherwise.
type progress struct {
	w    io.Writer
	tty  bool
	last string
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w}
	if f, ok := w.(*os.File); ok {
		_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
		p.tty = err == nil
	}
	return p
}

var percentRE = regexp.MustCompile(`(\d{1,3})%`)

// show prints a status line, with a bar when it carries a percentage.
func (p *progress) show(line string) {
	if line == p.last {
		return
	}
	p.last = line
	if !p.tty {
		fmt.Fprintln(p.w, line)
		return
	}
	bar := ""
	if m := percentRE.FindStringSubmatch(line); m != nil {
		n, _ := strconv.Atoi(m[1])
		n = min(n, 100)
		bar = "[" + strings.Repeat("#", n/5) + strings.Repeat(" ", 20-n/5) + "] "
	}
	fmt.Fprintf(p.w, "\r\033[K%s%s", bar, line)
}

// done ends the progress display.
func (p *progress) done() {
	if p.tty && p.last != "" {
		fmt.Fprintln(p.w)
	}
}
