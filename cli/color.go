package cli

import (
	"strings"
)

// ANSI colours of the states in tables.
const (
	colorGreen  = "\x1b[32m"
	colorRed    = "\x1b[31m"
	colorYellow = "\x1b[33m"
	colorReset  = "\x1b[0m"
)

// stateHeaders are the table columns whose cells are coloured by the state
// word they start with.
var stateHeaders = map[string]bool{"STATE": true, "STATUS": true}

// stateColors says which states stand out: what runs in green, what failed
// in red, what is on its way (or may be lost) in yellow. Finished states
// (complete, shutdown) stay plain.
var stateColors = map[string]string{
	"running":     colorGreen,
	"ready":       colorGreen,
	"failed":      colorRed,
	"rejected":    colorRed,
	"orphaned":    colorRed,
	"down":        colorRed,
	"new":         colorYellow,
	"pending":     colorYellow,
	"assigned":    colorYellow,
	"accepted":    colorYellow,
	"preparing":   colorYellow,
	"starting":    colorYellow,
	"unreachable": colorYellow,
}

// colorStates colours the cells of the state columns of an aligned table
// (header first) by their first word. The columns are found from the
// header, whose cells are separated by runs of two spaces or more, and
// widths are counted in runes as the table's alignment counts them; the
// padding stays outside the colour, so alignment holds.
func colorStates(table string) string {
	lines := strings.SplitAfter(table, "\n")
	if len(lines) < 2 {
		return table
	}
	starts, names := headerColumns(lines[0])
	var cols [][2]int // rune ranges of state columns, end -1 for the last
	for i, name := range names {
		if !stateHeaders[name] {
			continue
		}
		end := -1
		if i+1 < len(starts) {
			end = starts[i+1]
		}
		cols = append(cols, [2]int{starts[i], end})
	}
	if len(cols) == 0 {
		return table
	}
	var b strings.Builder
	b.WriteString(lines[0])
	for _, line := range lines[1:] {
		b.WriteString(colorCells(line, cols))
	}
	return b.String()
}

// headerColumns returns where each header cell starts (in runes) and its
// text.
func headerColumns(header string) (starts []int, names []string) {
	runes := []rune(strings.TrimRight(header, "\n"))
	for i := 0; i < len(runes); {
		if runes[i] == ' ' {
			i++
			continue
		}
		j := i
		// A cell ends at two spaces in a row ("LAST HEARTBEAT" is one).
		for j < len(runes) && !(runes[j] == ' ' && (j+1 >= len(runes) || runes[j+1] == ' ')) {
			j++
		}
		starts = append(starts, i)
		names = append(names, string(runes[i:j]))
		i = j
	}
	return starts, names
}

// colorCells colours the cells of line in the rune ranges cols.
func colorCells(line string, cols [][2]int) string {
	runes := []rune(line)
	var b strings.Builder
	at := 0
	for _, c := range cols {
		start, end := c[0], c[1]
		if end < 0 || end > len(runes) {
			end = len(runes)
		}
		if start >= end {
			continue
		}
		cell := string(runes[start:end])
		text := strings.TrimRight(cell, " \n")
		word, _, _ := strings.Cut(text, " ")
		color, ok := stateColors[word]
		if !ok {
			continue
		}
		b.WriteString(string(runes[at:start]))
		b.WriteString(color + text + colorReset)
		b.WriteString(cell[len(text):])
		at = end
	}
	b.WriteString(string(runes[at:]))
	return b.String()
}
