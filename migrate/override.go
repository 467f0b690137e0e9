package migrate

import (
	"fmt"
	"io"
	"strconv"

	"github.com/portal/portal-volume/appjson"
)

// Override writes the plan as a compose override file for file. Both
// compose clients merge a service's volumes by target, but not alike:
// Compose v2 cleans a short-syntax target ("/srv/x/" is "/srv/x") before
// it merges and a long-syntax one only after, docker-compose v1 compares
// targets as written. So each replacing entry has the syntax and the target
// spelling of the bind mount it replaces, and both clients see the same
// key in both files. Every mount has nocopy, every volume a fixed name;
// external ones (created beforehand) carry no driver options, which
// docker-compose v1 would compare with what Docker holds. Every string is
// double-quoted, so that YAML reads none as a number or boolean.
func (p *Plan) Override(w io.Writer, file, driver string, external bool) {
	q := strconv.Quote
	fmt.Fprintf(w, "# portal-volume volumes for the bind mounts of %s (portal-volume migrate).\n", file)
	fmt.Fprintf(w, "# Use: docker compose -f %s -f THIS_FILE up -d (or docker-compose, the same flags)\n", file)
	if len(p.Replaced) == 0 {
		fmt.Fprintln(w, "# No bind mount to replace.")
		fmt.Fprintln(w, "services: {}")
		return
	}
	fmt.Fprintln(w, "services:")
	service := ""
	for _, r := range p.Replaced {
		if r.Mount.Service != service {
			service = r.Mount.Service
			fmt.Fprintf(w, "  %s:\n    volumes:\n", q(service))
		}
		if !r.Mount.Long {
			mode := "nocopy"
			if r.Mount.ReadOnly {
				mode = "ro,nocopy"
			}
			fmt.Fprintf(w, "      - %s\n", q(r.Volume.Name+":"+r.Mount.Target+":"+mode))
			continue
		}
		fmt.Fprintf(w, "      - type: volume\n        source: %s\n        target: %s\n", q(r.Volume.Name), q(r.Mount.Target))
		if r.Mount.ReadOnly {
			fmt.Fprintln(w, "        read_only: true")
		}
		fmt.Fprintln(w, "        volume:\n          nocopy: true")
	}
	fmt.Fprintln(w, "volumes:")
	for _, v := range p.Volumes {
		fmt.Fprintf(w, "  %s:\n    name: %s\n", q(v.Name), q(v.Name))
		if external {
			fmt.Fprintln(w, "    external: true")
			continue
		}
		fmt.Fprintf(w, "    driver: %s\n    driver_opts:\n", q(driver))
		for _, kv := range appjson.OrderedOptions(v.Options) {
			fmt.Fprintf(w, "      %s: %s\n", kv[0], q(kv[1]))
		}
	}
}
