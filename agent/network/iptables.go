package network

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// iptables runs iptables, waiting for the xtables lock the CNI plugins
// take too.
func iptables(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "iptables", append([]string{"-w"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("iptables %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// masqueradeRule is the one nat rule that lets every container of the
// node's subnet reach other networks under the node's address.
func masqueradeRule(network, subnet string) []string {
	return []string{"POSTROUTING", "-s", subnet, "!", "-d", subnet,
		"-m", "comment", "--comment", "berth masquerade " + network, "-j", "MASQUERADE"}
}

// ensureRule appends rule to the nat table unless it is there.
func ensureRule(ctx context.Context, rule []string) error {
	if _, err := iptables(ctx, append([]string{"-t", "nat", "-C"}, rule...)...); err == nil {
		return nil
	}
	_, err := iptables(ctx, append([]string{"-t", "nat", "-A"}, rule...)...)
	return err
}

// deleteMasquerade removes the masquerade rules of network, whatever
// subnet they name: Destroy may run with a handle whose subnet differs from
// the one the rule was made for.
func deleteMasquerade(ctx context.Context, network string) error {
	out, err := iptables(ctx, "-t", "nat", "-S", "POSTROUTING")
	if err != nil {
		return err
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "-A POSTROUTING ") || !strings.Contains(line, `"berth masquerade `+network+`"`) {
			continue
		}
		args := strings.Fields(strings.ReplaceAll(strings.TrimPrefix(line, "-A "), `"`, ""))
		// The comment was split on its spaces; put it back together.
		args = rejoinComment(args, "berth masquerade "+network)
		if _, err := iptables(ctx, append([]string{"-t", "nat", "-D"}, args...)...); err != nil {
			return err
		}
	}
	return nil
}

// rejoinComment turns the words of comment, split by strings.Fields, back
// into one argument after --comment.
func rejoinComment(args []string, comment string) []string {
	n := len(strings.Fields(comment))
	for i, a := range args {
		if a == "--comment" && i+n < len(args) {
			out := append([]string{}, args[:i+1]...)
			out = append(out, comment)
			return append(out, args[i+1+n:]...)
		}
	}
	return args
}
