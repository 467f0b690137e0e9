package migrate

import (
	"fmt"
	"io"
	"strconv"

	"github.com/portal/portal-volume/appjson"
)

// Override writes the plan as a compose override file for file. Every
// replacing mount uses the long syntax with the target exactly as the file
// wrote it: Compose v2 and docker-compose v1 both merge a service's volumes
// by target, so the entry takes the bind mount's place. Every volume has a
// fixed name; external ones (created beforehand) carry no driver options,
// which docker-compose v1 would compare with what Docker holds. Every
// string is double-quoted, so that YAML reads none as a number or boolean.
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
