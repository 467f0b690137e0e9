package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/portal/portal-volume/driver"
	"github.com/portal/portal-volume/driver/spec"
	"github.com/portal/portal-volume/internal/install"
	"github.com/portal/portal-volume/migrate"
)

const migrateUsage = `usage: portal-volume migrate [flags] COMPOSE_FILE

Reads COMPOSE_FILE (a rendered Portal docker-compose.yml, or the one file
Portal's old core generated for all apps) and prints on stdout a compose
override that replaces every bind mount of a directory under the root with
a portal-volume volume on the same directory, adopted as it is. Bind mounts
it cannot replace stay as they are and are listed on stderr, with the
reason. Then: docker compose -f COMPOSE_FILE -f OVERRIDE up -d

--root must be the plugin's own --root: today's Portal hosts keep their tree
in /home/shard/user_data, older ones (and the plugin's default) in
/home/portal/user_data.

flags:
`

// runMigrate is the migrate subcommand. It returns the exit code: 0 the
// override is written, 1 the file is refused or a create failed, 2 bad
// usage.
func runMigrate(args []string, stdout, stderr io.Writer) int {
	fs := newSubcommand("migrate", migrateUsage, stderr)
	root := fs.String("root", driver.DefaultRoot, "the Portal tree, as the plugin's --root")
	project := fs.String("project", "", "the compose project, prefix of shared and tree volume names (default: the compose file's directory name, as compose takes it)")
	in := installerFlags(fs, "migrate", "the override then names them external", stderr)
	create := in.create

	files, code, done := parseArgs(fs, args)
	if done {
		return code
	}
	if len(files) != 1 {
		return in.usage("want exactly one COMPOSE_FILE, got %d", len(files))
	}
	if !filepath.IsAbs(*root) {
		return in.usage("--root %q: want an absolute path", *root)
	}
	sharedNames, makeVolume, err := in.resolve()
	if err != nil {
		return in.usage("%v", err)
	}
	file := files[0]
	fail := func(msg string, lines ...string) int { return in.fail(file, msg, lines...) }
	abs, err := filepath.Abs(file)
	if err != nil {
		return fail(err.Error())
	}
	if *project == "" {
		*project = migrate.Project(filepath.Dir(abs))
	}
	data, err := readFile(file)
	if err != nil {
		return fail(err.Error() + "; nothing was created")
	}
	f, err := migrate.Read(data)
	if err != nil {
		return fail(err.Error() + "; nothing was created")
	}
	home, _ := os.UserHomeDir()
	plan, err := migrate.MakePlan(f, migrate.Config{Root: *root, SharedNames: sharedNames, Project: *project, Dir: filepath.Dir(abs), Home: home})
	if err != nil {
		return fail(err.Error()+"; nothing was created", "give --project NAME")
	}
	for _, k := range plan.Kept {
		fmt.Fprintf(stderr, "kept %s\n", k)
	}
	if len(plan.Replaced) == 0 && len(plan.Kept) > 0 && *root == driver.DefaultRoot {
		fmt.Fprintf(stderr, "no bind mount under the root %s: is the tree elsewhere (today's hosts: --root /home/shard/user_data, the plugin's --root too)?\n", *root)
	}
	for _, r := range plan.Replaced {
		fmt.Fprintf(stderr, "replaced %s with volume %s (%s)\n", r.Mount, r.Volume.Name, adoption(r.Volume))
	}
	if *create {
		vols := make([]install.Volume, len(plan.Volumes))
		for i, v := range plan.Volumes {
			vols[i] = v.Volume
		}
		if failed := install.Create(makeVolume, vols, stderr); len(failed) > 0 {
			return fail(plural(len(failed), "volume")+" not created; no override written", failed...)
		}
	}
	plan.Override(stdout, filepath.Base(file), *in.driver, *create)
	return 0
}

// adoption says what happens to a volume's directory.
func adoption(v *migrate.Volume) string {
	dir := v.Spec.Dir()
	if !v.Exists {
		return dir + ", missing: made at create"
	}
	if _, ok := v.Options[spec.KeyMode]; ok {
		return fmt.Sprintf("%s, adopted with owner %d:%d mode %04o", dir, v.UID, v.GID, v.Mode)
	}
	return dir + ", adopted as it is"
}
