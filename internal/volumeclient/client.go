// Package volumeclient calls a Docker volume plugin over its unix socket,
// as the engine does: over kept-alive connections, with the plugin
// protocol's media type. The appjson and migrate subcommands create their
// volumes with it, the bench times calls with it, and the end-to-end tests
// talk to the plugin with it.
package volumeclient

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

// MediaType is what Docker's plugin client sends and accepts.
const MediaType = "application/vnd.docker.plugins.v1.2+json"

// maxAnswer bounds an answer read by Call: a socket that is not a plugin's
// must not make the caller read without end.
const maxAnswer = 1 << 20

// Client calls the plugin at one socket. Its methods may be called
// concurrently.
type Client struct {
	socket string
	http   *http.Client
}

// New is a client of the plugin at socket that keeps up to conns idle
// connections (as Docker's plugin client keeps them) and gives up on a
// call after timeout.
func New(socket string, timeout time.Duration, conns int) *Client {
	return &Client{socket: socket, http: &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, "unix", socket)
			},
			DisableCompression:  true,
			MaxIdleConns:        conns,
			MaxIdleConnsPerHost: conns,
			IdleConnTimeout:     time.Minute,
		},
	}}
}

// Socket is the socket the client calls.
func (c *Client) Socket() string { return c.socket }

// Close closes the idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// Error is a plugin's refusal: the Err of its answer, in its own words.
type Error struct {
	Endpoint string
	Msg      string
}

func (e *Error) Error() string { return e.Msg }

// Post posts body to endpoint (such as "VolumeDriver.Get") and reads the
// answer into answer, reset first. It is the bare call, for callers that
// time it: an answer with a status other than 200 is an error carrying the
// answer; anything else is for the caller to read.
func (c *Client) Post(endpoint string, body []byte, answer *bytes.Buffer) error {
	status, err := c.post(endpoint, body, answer, -1)
	if err == nil && status != http.StatusOK {
		return fmt.Errorf("plugin answered %s to %s: %s", http.StatusText(status), endpoint, strings.TrimSpace(answer.String()))
	}
	return err
}

// Call sends req (nil: no body) as JSON to endpoint and decodes the answer
// into reply (nil: only its Err is read). A refusal of the plugin is an
// *Error.
func (c *Client) Call(endpoint string, req, reply any) error {
	var body []byte
	if req != nil {
		var err error
		if body, err = json.Marshal(req); err != nil {
			return err
		}
	}
	var answer bytes.Buffer
	status, err := c.post(endpoint, body, &answer, maxAnswer)
	if err != nil {
		return err
	}
	var refusal struct{ Err string }
	jsonErr := json.Unmarshal(answer.Bytes(), &refusal)
	switch {
	case refusal.Err != "":
		return &Error{endpoint, refusal.Err}
	case status != http.StatusOK:
		return fmt.Errorf("plugin answered %d %s: %s", status, http.StatusText(status), strings.TrimSpace(answer.String()))
	case jsonErr != nil:
		return fmt.Errorf("plugin answered %q, not JSON", strings.TrimSpace(answer.String()))
	case reply != nil:
		return json.Unmarshal(answer.Bytes(), reply)
	}
	return nil
}

// Create asks the plugin to create the volume name with opts, as
// `docker volume create` does.
func (c *Client) Create(name string, opts map[string]string) error {
	return c.Call("VolumeDriver.Create", struct {
		Name string
		Opts map[string]string
	}{name, opts}, nil)
}

// post makes the call and reads at most limit bytes of the answer (-1: no
// limit) into answer.
func (c *Client) post(endpoint string, body []byte, answer *bytes.Buffer, limit int64) (int, error) {
	req, err := http.NewRequest(http.MethodPost, "http://plugin/"+strings.TrimPrefix(endpoint, "/"), bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", MediaType)
	req.Header.Set("Accept", MediaType)
	resp, err := c.http.Do(req)
	if err != nil {
		// Not net/http's "Post http://plugin/...": the socket is what
		// the user knows.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return 0, fmt.Errorf("plugin socket %s: %w", c.socket, err)
	}
	defer resp.Body.Close()
	answer.Reset()
	var r io.Reader = resp.Body
	if limit >= 0 {
		r = io.LimitReader(r, limit)
	}
	if _, err := answer.ReadFrom(r); err != nil {
		return 0, fmt.Errorf("plugin socket %s: reading the answer: %w", c.socket, err)
	}
	return resp.StatusCode, nil
}
