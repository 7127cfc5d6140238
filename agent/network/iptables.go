package network

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
)

// masqChain is the nat chain the bridge plugin makes for one container's
// outbound masquerading: "CNI-" and 24 hex digits of sha512(network+id).
func masqChain(network, id string) string {
	sum := sha512.Sum512([]byte(network + id))
	return "CNI-" + hex.EncodeToString(sum[:12])
}

// removeMasqRules deletes the bridge plugin's masquerading chain of id and
// the POSTROUTING rules that jump to it. The plugin deletes them itself
// only while the container's namespace exists, since it learns the
// container's address from the interface there; this covers a namespace
// that vanished first. A chain that does not exist is not an error.
func removeMasqRules(ctx context.Context, network, id string) error {
	chain := masqChain(network, id)
	if _, err := iptables(ctx, "-t", "nat", "-S", chain); err != nil {
		return nil // no such chain: nothing was leaked
	}
	out, err := iptables(ctx, "-t", "nat", "-L", "POSTROUTING", "-n", "--line-numbers")
	if err != nil {
		return err
	}
	var nums []int
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || f[1] != chain {
			continue
		}
		if n, err := strconv.Atoi(f[0]); err == nil {
			nums = append(nums, n)
		}
	}
	// Delete from the bottom so earlier rule numbers stay valid.
	slices.Sort(nums)
	slices.Reverse(nums)
	for _, n := range nums {
		if _, err := iptables(ctx, "-t", "nat", "-D", "POSTROUTING", strconv.Itoa(n)); err != nil {
			return err
		}
	}
	if _, err := iptables(ctx, "-t", "nat", "-F", chain); err != nil {
		return err
	}
	if _, err := iptables(ctx, "-t", "nat", "-X", chain); err != nil {
		return err
	}
	return nil
}

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
