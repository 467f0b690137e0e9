package migrate

import (
	"io"

	"github.com/portal/portal-volume/internal/install"
)

// Override writes the plan as a compose override file for file: each
// replacing entry has the syntax and the target spelling of the bind mount
// it replaces (see install.Override).
func (p *Plan) Override(w io.Writer, file, driver string, external bool) {
	o := install.Override{
		Header: []string{
			"portal-volume volumes for the bind mounts of " + file + " (portal-volume migrate).",
			"Use: docker compose -f " + file + " -f THIS_FILE up -d (or docker-compose, the same flags)",
		},
		Empty:    []string{"# No bind mount to replace.", "services: {}"},
		Driver:   driver,
		External: external,
	}
	for _, r := range p.Replaced {
		o.Mounts = append(o.Mounts, install.Mount{Service: r.Mount.Service, Volume: r.Volume.Name, Target: r.Mount.Target,
			ReadOnly: r.Mount.ReadOnly, Long: r.Mount.Long})
	}
	for _, v := range p.Volumes {
		o.Volumes = append(o.Volumes, v.Volume)
	}
	o.Write(w)
}
