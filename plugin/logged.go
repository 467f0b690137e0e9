package main

import (
	"time"

	"github.com/docker/go-plugins-helpers/volume"
	"github.com/sirupsen/logrus"
)

// logged logs every request at debug level with its volume, duration and
// outcome, one line each. Refusals and changes are logged by the driver.
type logged struct {
	d   volume.Driver
	log *logrus.Logger
}

func (l logged) done(call, name string, start time.Time, err error) error {
	if l.log.IsLevelEnabled(logrus.DebugLevel) {
		e := l.log.WithFields(logrus.Fields{"call": call, "volume": name, "duration": time.Since(start)})
		if err != nil {
			e = e.WithError(err)
		}
		e.Debug("request")
	}
	return err
}

func (l logged) Create(r *volume.CreateRequest) error {
	return l.done("Create", r.Name, time.Now(), l.d.Create(r))
}

func (l logged) Remove(r *volume.RemoveRequest) error {
	return l.done("Remove", r.Name, time.Now(), l.d.Remove(r))
}

func (l logged) Unmount(r *volume.UnmountRequest) error {
	return l.done("Unmount", r.Name, time.Now(), l.d.Unmount(r))
}

func (l logged) Get(r *volume.GetRequest) (*volume.GetResponse, error) {
	start := time.Now()
	res, err := l.d.Get(r)
	return res, l.done("Get", r.Name, start, err)
}

func (l logged) Path(r *volume.PathRequest) (*volume.PathResponse, error) {
	start := time.Now()
	res, err := l.d.Path(r)
	return res, l.done("Path", r.Name, start, err)
}

func (l logged) Mount(r *volume.MountRequest) (*volume.MountResponse, error) {
	start := time.Now()
	res, err := l.d.Mount(r)
	return res, l.done("Mount", r.Name, start, err)
}

func (l logged) List() (*volume.ListResponse, error) {
	start := time.Now()
	res, err := l.d.List()
	return res, l.done("List", "", start, err)
}

func (l logged) Capabilities() *volume.CapabilitiesResponse {
	start := time.Now()
	res := l.d.Capabilities()
	_ = l.done("Capabilities", "", start, nil)
	return res
}
