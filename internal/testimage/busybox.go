package testimage

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
)

// IndexHTML is the body of /www/index.html in the busybox image, so tests
// can tell that `httpd -h /www` serves from inside the container.
const IndexHTML = "hello from berth\n"

// BusyboxFiles returns the files of a minimal busybox image: the static
// busybox binary at /bin/busybox with a symlink in /bin for each of its
// applets, users root and nobody (uid 65534), a world-writable /tmp and
// /www/index.html. busyboxPath must name a statically linked busybox, since
// the image has no libraries.
func BusyboxFiles(busyboxPath string) ([]File, error) {
	bin, err := os.ReadFile(busyboxPath)
	if err != nil {
		return nil, fmt.Errorf("testimage: read busybox (install busybox-static, or pass its path): %w", err)
	}
	out, err := exec.Command(busyboxPath, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("testimage: list applets of %s: %w", busyboxPath, err)
	}

	files := []File{
		{Path: "/bin/busybox", Mode: 0o755, Content: bin},
		{Path: "/etc/passwd", Mode: 0o644, Content: []byte(
			"root:x:0:0:root:/root:/bin/sh\n" +
				"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")},
		{Path: "/etc/group", Mode: 0o644, Content: []byte(
			"root:x:0:\n" +
				"nogroup:x:65534:\n")},
		{Path: "/root", Mode: fs.ModeDir | 0o700},
		{Path: "/tmp", Mode: fs.ModeDir | fs.ModeSticky | 0o777},
		{Path: "/www/index.html", Mode: 0o644, Content: []byte(IndexHTML)},
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		applet := sc.Text()
		if applet == "" || applet == "busybox" || path.Base(applet) != applet {
			continue
		}
		files = append(files, File{Path: "/bin/" + applet, Linkname: "busybox"})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("testimage: read applet list: %w", err)
	}
	return files, nil
}
