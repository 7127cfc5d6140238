package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/berthproject/berth/agent/image"
	"github.com/berthproject/berth/agent/runtime/containerd"
	"github.com/berthproject/berth/api/identity"
)

// contentPortFile keeps the content server's port across restarts, so the
// address peers and the control plane know stays right.
const contentPortFile = "content-port"

// startImages sets up the puller and, on containerd, the content server
// that lets peers fetch this node's images.
func (a *Agent) startImages() error {
	peerTLS := image.PeerTLS(a.live)
	ctd, ok := a.rt.(*containerd.Runtime)
	if ok {
		if err := a.listenContent(ctd); err != nil {
			return err
		}
	}
	a.puller = image.NewPuller(image.PullerConfig{
		Runtime: a.rt,
		PeerTLS: peerTLS,
		Self:    a.contentAddress(),
		Pulled:  func() { a.noteImages(a.runCtx) },
		Log:     a.log.With("component", "images"),
	})
	return nil
}

// listenContent opens the content server's listener: --content-addr, or
// the node endpoint's host on the port it had before (else any).
func (a *Agent) listenContent(ctd *containerd.Runtime) error {
	portFile := filepath.Join(a.cfg.DataDir, contentPortFile)
	addr := a.cfg.ContentAddr
	if addr == "" {
		host, _, _ := net.SplitHostPort(a.listener.Addr().String())
		port := "0"
		if b, err := os.ReadFile(portFile); err == nil {
			port = strings.TrimSpace(string(b))
		}
		addr = net.JoinHostPort(host, port)
		l, err := net.Listen("tcp", addr)
		if err != nil && port != "0" {
			a.log.Warn("former content server port is taken; using another", "port", port, "err", err)
			l, err = net.Listen("tcp", net.JoinHostPort(host, "0"))
		}
		if err != nil {
			return fmt.Errorf("content server on %s: %w", addr, err)
		}
		a.contentListener = l
		_, port, _ = net.SplitHostPort(l.Addr().String())
		if err := os.WriteFile(portFile, []byte(port+"\n"), 0o600); err != nil {
			a.log.Warn("saving the content server port", "err", err)
		}
	} else {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("content server on %s (--content-addr): %w", addr, err)
		}
		a.contentListener = l
	}
	tlsCfg := image.ServerTLS(a.live)
	// Grants are checked against the trust bundle of the moment, so a
	// CA rotation reaches them.
	grants := identity.NewLivePullGrantVerifier(func() []byte { _, _, ca := a.live.PEM(); return ca })
	a.content = &http.Server{
		Handler: image.NewContentServer(image.ContentServerConfig{
			Content:   ctd.Client().ContentStore(),
			Grants:    grants,
			Namespace: ctd.Namespace(),
			NodeName:  a.cfg.Name,
			Log:       a.log.With("component", "content"),
		}),
		TLSConfig:         tlsCfg,
		ReadHeaderTimeout: 10 * time.Second,
		// Requests have no body; no write timeout, which would cut the
		// transfer of a large layer to a slow peer.
		IdleTimeout: 2 * time.Minute,
	}
	return nil
}

// serveContent serves peers until the agent stops.
func (a *Agent) serveContent() error {
	err := a.content.Serve(tls.NewListener(a.contentListener, a.content.TLSConfig))
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("content server: %w", err)
}

// contentAddress is where peers reach the content server: its listener's
// address, with the node endpoint's host when it listens on every address.
func (a *Agent) contentAddress() string {
	if a.contentListener == nil {
		return ""
	}
	host, port, _ := net.SplitHostPort(a.contentListener.Addr().String())
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host, _, _ = net.SplitHostPort(a.listener.Addr().String())
	}
	return net.JoinHostPort(host, port)
}

// images lists the node's image names, sorted, and the manifest digest of
// each.
func (a *Agent) images(ctx context.Context) ([]string, map[string]string) {
	images, err := a.rt.ListImages(ctx)
	if err != nil {
		a.log.Warn("listing images", "err", err)
		return nil, nil
	}
	names := make([]string, 0, len(images))
	digests := make(map[string]string, len(images))
	for _, im := range images {
		names = append(names, im.Name)
		digests[im.Name] = im.Digest
	}
	sort.Strings(names)
	return names, digests
}

// noteImages tells the control plane the node's images, after they
// changed.
func (a *Agent) noteImages(ctx context.Context) {
	if a.session == nil {
		return
	}
	names, digests := a.images(ctx)
	a.session.ImagesChangedWithDigests(names, digests)
}

// imageGCPeriod is how often image cleanup checks the disk.
const imageGCPeriod = time.Minute

// runImageCleanup removes unused images when the disk holding
// containerd's root fills up, every imageGCPeriod until ctx ends.
func (a *Agent) runImageCleanup(ctx context.Context, root string) error {
	c := &image.Cleanup{
		Runtime:     a.rt,
		Dir:         root,
		HighPercent: a.cfg.ImageGCHighPercent,
		LowPercent:  a.cfg.ImageGCLowPercent,
		Log:         a.log.With("component", "image cleanup"),
	}
	tick := time.NewTicker(imageGCPeriod)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		removed, err := c.Once(ctx)
		if err != nil && ctx.Err() == nil {
			a.log.Warn("image cleanup", "err", err)
		}
		if len(removed) > 0 {
			a.noteImages(ctx)
		}
	}
}
