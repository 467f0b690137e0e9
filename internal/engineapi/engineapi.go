// Package engineapi creates volumes through the Docker Engine's own API,
// as docker volume create does: the engine finds the plugin by its driver
// name, whatever its mode or where its socket lives, asks it to create the
// volume and keeps a record of it with its options.
package engineapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DefaultSocket is where the engine answers when DOCKER_HOST is unset.
const DefaultSocket = "/var/run/docker.sock"

// Socket is the engine's socket named by dockerHost (the value of
// DOCKER_HOST): a unix:// address, or DefaultSocket when it is empty.
func Socket(dockerHost string) (string, error) {
	switch {
	case dockerHost == "":
		return DefaultSocket, nil
	case strings.HasPrefix(dockerHost, "unix://") && len(dockerHost) > len("unix://"):
		return strings.TrimPrefix(dockerHost, "unix://"), nil
	}
	return "", fmt.Errorf("DOCKER_HOST %q: want unix:///path/to/docker.sock (or give the plugin's --socket)", dockerHost)
}

// createTimeout bounds one create: the engine gives the plugin about as
// long to answer.
const createTimeout = 90 * time.Second

// CreateVolume asks the engine at socket for the volume name of driver
// with opts. The engine answers a create of a name it already has, with
// the same driver, without asking the plugin.
func CreateVolume(ctx context.Context, socket, driver, name string, opts map[string]string) error {
	body, err := json.Marshal(struct {
		Name       string
		Driver     string
		DriverOpts map[string]string
	}{name, driver, opts})
	if err != nil {
		return err
	}
	client := &http.Client{
		Timeout: createTimeout,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", socket)
			},
		},
	}
	defer client.CloseIdleConnections()
	// No version in the path: every engine serves it at its own API
	// version, from 20.10 to one that refuses clients older than 1.44.
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://docker/volumes/create", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the socket is what the user knows, not the URL
		}
		return fmt.Errorf("Docker engine at %s: %w", socket, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("Docker engine at %s: reading the answer: %w", socket, err)
	}
	if resp.StatusCode == http.StatusCreated || resp.StatusCode == http.StatusOK {
		return nil
	}
	var answer struct{ Message string }
	if json.Unmarshal(raw, &answer) == nil && answer.Message != "" {
		return errors.New(answer.Message)
	}
	return fmt.Errorf("Docker engine at %s answered %s: %s", socket, resp.Status, strings.TrimSpace(string(raw)))
}
