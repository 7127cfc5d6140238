package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

func newCpCommand(o *rootOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cp TASK:PATH LOCAL | LOCAL TASK:PATH",
		Short: "Copy files between a running task's container and the local machine",
		Long: `Copy a file or a directory out of a running task's container, or into it.
TASK names the task as berth exec does: a task ID prefix, APP/SERVICE.SLOT,
or APP/SERVICE for the service's running task with the lowest slot. PATH is
absolute in the container; symlinks in it resolve inside the container,
never out of it.

Copying out, LOCAL is created (or, when it is a directory, what is copied
goes into it); copying in, PATH gets the same treatment in the container.
"-" as LOCAL writes a tar archive to standard output, or reads one from
standard input, like docker cp. Modes and modification times are kept;
owners are not (files copied in belong to the container's root user).
Device files, FIFOs and sockets are refused, and one copy moves at most
1 GiB of file data. A container with a read-only root file system takes
files only in its writable volumes.`,
		Example: `  # A file out of the web service's first running task
  berth cp shop/web:/etc/nginx/nginx.conf ./nginx.conf

  # A directory into replica 2
  berth cp ./site shop/web.2:/usr/share/nginx/html

  # A tar archive of /var/log, by task ID prefix
  berth cp 3f9a2c:/var/log - > logs.tar`,
		GroupID: groupApps,
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			srcTask, srcPath, srcRemote := splitCopyArg(args[0])
			dstTask, dstPath, dstRemote := splitCopyArg(args[1])
			switch {
			case srcRemote && dstRemote:
				return usageErrorf("both %q and %q name a task; copy between a task and the local machine", args[0], args[1])
			case !srcRemote && !dstRemote:
				return usageErrorf("neither %q nor %q names a task; write one as TASK:/path", args[0], args[1])
			}
			task, path := srcTask, srcPath
			if dstRemote {
				task, path = dstTask, dstPath
			}
			if !strings.HasPrefix(path, "/") {
				return usageErrorf("%q is not an absolute path in the container; write it as %s:/%s", path, task, path)
			}
			return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
				var req berthv1.LogsRequest
				if _, err := logTarget(cmd, c, task, &req); err != nil {
					return err
				}
				target := &berthv1.CopyTarget{TaskId: req.TaskId, Path: path}
				if target.TaskId == "" {
					target.App, target.Service = req.App, req.Service
				}
				if srcRemote {
					return copyFromTask(ctx, c, target, args[1], cmd.OutOrStdout())
				}
				return copyToTask(ctx, c, target, args[0], cmd.InOrStdin())
			})
		},
	}
	return cmd
}

// splitCopyArg reads TASK:PATH; a local path (one with no ":", or that
// starts with "/" or ".", or "-") is not remote.
func splitCopyArg(arg string) (task, path string, remote bool) {
	if arg == "-" || strings.HasPrefix(arg, "/") || strings.HasPrefix(arg, ".") {
		return "", arg, false
	}
	task, path, ok := strings.Cut(arg, ":")
	if !ok || task == "" {
		return "", arg, false
	}
	return task, path, true
}

// copyFromTask receives target as a tar archive and writes it to stdout
// (local "-") or unpacks it at local.
func copyFromTask(ctx context.Context, c *cluster, target *berthv1.CopyTarget, local string, stdout io.Writer) error {
	stream, err := c.CopyFromTask(ctx, &berthv1.CopyFromTaskRequest{Namespace: c.namespace, Target: target})
	if err != nil {
		return fmt.Errorf("copy %s: %w", target.Path, err)
	}
	pr, pw := io.Pipe()
	go func() {
		for {
			chunk, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				pw.Close()
				return
			}
			if err != nil {
				pw.CloseWithError(err)
				return
			}
			if _, err := pw.Write(chunk.Data); err != nil {
				return // the reader stopped
			}
		}
	}()
	defer pr.Close()
	if local == "-" {
		if _, err := io.Copy(stdout, pr); err != nil {
			return fmt.Errorf("copy %s: %w", target.Path, err)
		}
		return nil
	}
	if err := untarLocal(pr, local); err != nil {
		return fmt.Errorf("copy %s to %s: %w", target.Path, local, err)
	}
	return nil
}

// copyToTask sends local (a file or directory, or a tar archive on stdin
// for "-") to target.
func copyToTask(ctx context.Context, c *cluster, target *berthv1.CopyTarget, local string, stdin io.Reader) error {
	var archive io.Reader = stdin
	if local != "-" {
		// Checked first: a missing file must not start a copy.
		if _, err := os.Lstat(local); err != nil {
			return err
		}
		pr, pw := io.Pipe()
		defer pr.Close()
		go func() { pw.CloseWithError(tarLocal(local, pw)) }()
		archive = pr
	}
	// Cancelled when the archive cannot be read to its end, so the node
	// does not take a cut one for whole.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.CopyToTask(ctx)
	if err != nil {
		return fmt.Errorf("copy to %s: %w", target.Path, err)
	}
	first := &berthv1.CopyToTaskRequest{Namespace: c.namespace, Target: target}
	buf := make([]byte, 64<<10)
	sent := false
	for {
		n, rerr := archive.Read(buf)
		if n > 0 || !sent {
			msg := first
			if sent {
				msg = &berthv1.CopyToTaskRequest{}
			}
			msg.Chunk = buf[:n]
			if err := stream.Send(msg); err != nil {
				break // the server ended the call; CloseAndRecv says why
			}
			sent = true
		}
		if errors.Is(rerr, io.EOF) {
			break
		}
		if rerr != nil {
			cancel()
			return fmt.Errorf("copy %s: %w", local, rerr)
		}
	}
	if _, err := stream.CloseAndRecv(); err != nil {
		return fmt.Errorf("copy to %s: %w", target.Path, err)
	}
	return nil
}
