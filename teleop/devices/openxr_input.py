"""OpenXR runtimes via `pyopenxr` (import name `xr`): head, hand tracking, body trackers -> OperatorInput.

- Head: the VIEW reference space located in STAGE (fallback LOCAL).
- Hands: XR_EXT_hand_tracking's 26 joints -> the 21 MediaPipe landmarks (palm and the four finger
  metacarpals dropped); the wrist site comes from the hand-tracking WRIST joint unless a tracker is bound.
- Body trackers (pelvis, feet, optionally wrists): XR_HTCX_vive_tracker_interaction role paths
  (`/user/vive_tracker_htcx/role/waist` ...), which SteamVR and PICO's runtime expose for
  motion trackers. (pyopenxr names XR_BD_motion_tracker but binds none of its functions.)
- Runs a headless session (XR_MND_headless, e.g. Monado), with XR_KHR_convert_timespec_time for "now".

`open()` raises `DeviceUnavailable` naming what is missing: the `pyopenxr` package, an OpenXR runtime, or an
extension. The session plumbing needs a runtime to exercise; the conversions are unit-tested against
pyopenxr's own structures.
"""
from __future__ import annotations

import ctypes
import time

import numpy as np

from teleop.devices.frames import quat_xyzw_to_matrix, y_up_pose_to_world, y_up_points_to_world
from teleop.streams import BODY_SITES, HAND_SIDES, DeviceUnavailable, InputDevice, OperatorInput

N_XR_HAND_JOINTS = 26
# XrHandJointEXT: 0 palm, 1 wrist, 2-5 thumb metacarpal/proximal/distal/tip,
# then index, middle, ring, little: metacarpal, proximal, intermediate, distal, tip (6-10, 11-15, 16-20, 21-25)
OPENXR_TO_MEDIAPIPE = (1, 2, 3, 4, 5, 7, 8, 9, 10, 12, 13, 14, 15, 17, 18, 19, 20, 22, 23, 24, 25)
"""For each MediaPipe landmark (wrist, thumb CMC..tip, index MCP..tip, ...), its XrHandJointEXT index."""
XR_WRIST = 1
_POSITION_VALID = 0x2          # XR_SPACE_LOCATION_POSITION_VALID_BIT
_ORIENTATION_VALID = 0x1

VIVE_TRACKER_ROLES = {"pelvis": "waist", "left_foot": "left_foot", "right_foot": "right_foot",
                      "left_wrist": "left_wrist", "right_wrist": "right_wrist"}
"""Site -> XR_HTCX_vive_tracker_interaction role (path /user/vive_tracker_htcx/role/<role>)."""


def posef_to_pose(posef) -> np.ndarray:
    """An `xr.Posef` (y-up stage space) -> (4, 4) pose in the z-up world frame."""
    o, p = posef.orientation, posef.position
    m = np.eye(4)
    m[:3, :3] = quat_xyzw_to_matrix(o.x, o.y, o.z, o.w)
    m[:3, 3] = (p.x, p.y, p.z)
    return y_up_pose_to_world(m)


def hand_joints_to_mediapipe(locations, is_active: bool = True) -> tuple[np.ndarray, bool, np.ndarray | None]:
    """26 `xr.HandJointLocationEXT` -> ((21, 3) world landmarks, valid, wrist pose or None).

    Valid when the hand is active and every landmark used has a valid position."""
    if len(locations) != N_XR_HAND_JOINTS:
        raise ValueError(f"expected {N_XR_HAND_JOINTS} hand joints (XR_HAND_JOINT_SET_DEFAULT_EXT), got {len(locations)}")
    pts = np.array([[locations[i].pose.position.x, locations[i].pose.position.y, locations[i].pose.position.z]
                    for i in OPENXR_TO_MEDIAPIPE], np.float64)
    flags = [int(locations[i].location_flags) for i in OPENXR_TO_MEDIAPIPE]
    valid = bool(is_active) and all(f & _POSITION_VALID for f in flags)
    wrist = locations[XR_WRIST]
    wrist_pose = posef_to_pose(wrist.pose) if int(wrist.location_flags) & (_POSITION_VALID | _ORIENTATION_VALID) == \
        (_POSITION_VALID | _ORIENTATION_VALID) else None
    return y_up_points_to_world(pts), valid, wrist_pose


class OpenXRInput:
    """InputDevice over an OpenXR runtime (headless session)."""

    def __init__(self, gamepad: InputDevice | None = None, trackers: dict[str, str] | None = None, name: str = "openxr"):
        self.name = name
        self.gamepad = gamepad
        self.tracker_roles = dict(VIVE_TRACKER_ROLES if trackers is None else trackers)
        self._xr = None
        self._last = {s: np.eye(4) for s in BODY_SITES}
        self._last_kp = {s: np.zeros((21, 3)) for s in HAND_SIDES}
        self.extensions: list[str] = []

    # -- setup
    def open(self) -> None:
        try:
            import xr  # noqa: PLC0415
        except ImportError as e:
            raise DeviceUnavailable("openxr: the `pyopenxr` package is not installed (pip install pyopenxr)") from e
        self._xr = xr
        try:
            available = {e.extension_name.decode() if isinstance(e.extension_name, bytes) else e.extension_name
                         for e in xr.enumerate_instance_extension_properties()}
        except Exception as e:   # noqa: BLE001  (no loader / no active runtime)
            raise DeviceUnavailable(f"openxr: no OpenXR runtime found ({type(e).__name__}: {e}); install and activate "
                                    "one (Monado, SteamVR, PICO) and set XR_RUNTIME_JSON") from e
        need = [xr.MND_HEADLESS_EXTENSION_NAME, xr.KHR_CONVERT_TIMESPEC_TIME_EXTENSION_NAME]
        missing = [n for n in need if n not in available]
        if missing:
            raise DeviceUnavailable(f"openxr: the runtime lacks {missing} (a headless session needs them)")
        want = [xr.EXT_HAND_TRACKING_EXTENSION_NAME, xr.HTCX_VIVE_TRACKER_INTERACTION_EXTENSION_NAME]
        self.extensions = need + [n for n in want if n in available]
        self.instance = xr.create_instance(xr.InstanceCreateInfo(enabled_extension_names=self.extensions))
        self.system = xr.get_system(self.instance, xr.SystemGetInfo(form_factor=xr.FormFactor.HEAD_MOUNTED_DISPLAY))
        self.session = xr.create_session(self.instance, xr.SessionCreateInfo(system_id=self.system))
        space_types = set(xr.enumerate_reference_spaces(self.session))
        base = xr.ReferenceSpaceType.STAGE if xr.ReferenceSpaceType.STAGE in space_types else xr.ReferenceSpaceType.LOCAL
        self.base = xr.create_reference_space(self.session, xr.ReferenceSpaceCreateInfo(reference_space_type=base))
        self.view = xr.create_reference_space(self.session, xr.ReferenceSpaceCreateInfo(
            reference_space_type=xr.ReferenceSpaceType.VIEW))
        self.hands = {}
        if xr.EXT_HAND_TRACKING_EXTENSION_NAME in self.extensions:
            for side, hand in (("left", xr.HandEXT.LEFT), ("right", xr.HandEXT.RIGHT)):
                self.hands[side] = xr.create_hand_tracker_ext(self.session, xr.HandTrackerCreateInfoEXT(
                    hand=hand, hand_joint_set=xr.HandJointSetEXT.DEFAULT))
        self._setup_trackers()
        self._begin()
        if self.gamepad is not None:
            self.gamepad.open()

    def _setup_trackers(self) -> None:
        xr = self._xr
        self.tracker_spaces = {}
        self.action_set = None
        if xr.HTCX_VIVE_TRACKER_INTERACTION_EXTENSION_NAME not in self.extensions or not self.tracker_roles:
            return
        self.action_set = xr.create_action_set(self.instance, xr.ActionSetCreateInfo(
            action_set_name="psi0_trackers", localized_action_set_name="psi0 trackers", priority=0))
        paths = {site: xr.string_to_path(self.instance, f"/user/vive_tracker_htcx/role/{role}")
                 for site, role in self.tracker_roles.items()}
        action = xr.create_action(self.action_set, xr.ActionCreateInfo(
            action_type=xr.ActionType.POSE_INPUT, action_name="tracker_pose", localized_action_name="tracker pose",
            subaction_paths=list(paths.values())))
        profile = xr.string_to_path(self.instance, "/interaction_profiles/htc/vive_tracker_htcx")
        bindings = [xr.ActionSuggestedBinding(action, xr.string_to_path(
            self.instance, f"/user/vive_tracker_htcx/role/{role}/input/grip/pose")) for role in self.tracker_roles.values()]
        xr.suggest_interaction_profile_bindings(self.instance, xr.InteractionProfileSuggestedBinding(
            interaction_profile=profile, suggested_bindings=bindings))
        xr.attach_session_action_sets(self.session, xr.SessionActionSetsAttachInfo(action_sets=[self.action_set]))
        for site, path in paths.items():
            self.tracker_spaces[site] = xr.create_action_space(self.session, xr.ActionSpaceCreateInfo(
                action=action, subaction_path=path))

    def _begin(self, timeout: float = 5.0) -> None:
        xr = self._xr
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                event = xr.poll_event(self.instance)
            except xr.EventUnavailable:
                time.sleep(0.01)
                continue
            if xr.StructureType(event.type) == xr.StructureType.EVENT_DATA_SESSION_STATE_CHANGED:
                state = ctypes.cast(ctypes.byref(event), ctypes.POINTER(xr.EventDataSessionStateChanged)).contents.state
                if xr.SessionState(state) == xr.SessionState.READY:
                    xr.begin_session(self.session, xr.SessionBeginInfo(
                        primary_view_configuration_type=xr.ViewConfigurationType.PRIMARY_STEREO))
                    return
        raise DeviceUnavailable("openxr: the session never became READY (headset asleep or runtime busy)")

    # -- sampling
    def _now(self) -> int:
        xr = self._xr
        ts = xr.timespec()
        t = time.clock_gettime(time.CLOCK_MONOTONIC)
        ts.tv_sec, ts.tv_nsec = int(t), int((t % 1.0) * 1e9)
        return xr.convert_timespec_time_to_time_khr(self.instance, ts)

    def _locate(self, space, t: int) -> np.ndarray | None:
        xr = self._xr
        loc = xr.locate_space(space, self.base, t)
        ok = int(loc.location_flags) & (_POSITION_VALID | _ORIENTATION_VALID) == (_POSITION_VALID | _ORIENTATION_VALID)
        return posef_to_pose(loc.pose) if ok else None

    def _locate_hand(self, tracker, t: int):
        xr = self._xr
        joints = (xr.HandJointLocationEXT * N_XR_HAND_JOINTS)()
        out = xr.HandJointLocationsEXT(joint_count=N_XR_HAND_JOINTS, joint_locations=joints)
        # pyopenxr's locate_hand_joints_ext passes no joint buffer, so call the runtime function directly
        fxn = ctypes.cast(xr.get_instance_proc_addr(self.instance, "xrLocateHandJointsEXT"), xr.PFN_xrLocateHandJointsEXT)
        result = xr.check_result(fxn(tracker, xr.HandJointsLocateInfoEXT(base_space=self.base, time=t), ctypes.byref(out)))
        if result.is_exception():
            raise result
        return hand_joints_to_mediapipe(list(joints), bool(out.is_active))

    def poll(self, now: float) -> OperatorInput:
        if self._xr is None:
            raise DeviceUnavailable("openxr: poll() before open()")
        xr = self._xr
        t = self._now()
        if self.action_set is not None:
            xr.sync_actions(self.session, xr.ActionsSyncInfo(active_action_sets=[xr.ActiveActionSet(self.action_set)]))
        poses = {"head": self._locate(self.view, t)}
        for site, space in self.tracker_spaces.items():
            poses[site] = self._locate(space, t)
        kps, hand_valid = {}, {}
        for side in HAND_SIDES:
            if side in self.hands:
                kp, ok, wrist = self._locate_hand(self.hands[side], t)
                if ok:
                    self._last_kp[side] = kp
                kps[side], hand_valid[side] = self._last_kp[side].copy(), ok
                if poses.get(f"{side}_wrist") is None and wrist is not None:
                    poses[f"{side}_wrist"] = wrist
            else:
                kps[side], hand_valid[side] = self._last_kp[side].copy(), False
        out, valid = {}, {}
        for site in BODY_SITES:
            p = poses.get(site)
            if p is not None:
                self._last[site] = p
            out[site], valid[site] = self._last[site].copy(), p is not None
        pad = self.gamepad.poll(now) if self.gamepad is not None else None
        return OperatorInput(t=float(now), poses=out, pose_valid=valid, hand_keypoints=kps, hand_valid=hand_valid,
                             axes=pad.axes if pad is not None else np.zeros(4),
                             buttons=pad.buttons if pad is not None else frozenset())

    def close(self) -> None:
        if self._xr is not None and getattr(self, "instance", None) is not None:
            try:
                self._xr.destroy_instance(self.instance)
            except Exception:    # noqa: BLE001  (closing a half-open session must not raise)
                pass
            self.instance = None
        if self.gamepad is not None:
            self.gamepad.close()

    def describe(self) -> dict:
        return {"name": self.name, "kind": "openxr", "extensions": list(self.extensions),
                "tracker_roles": dict(sorted(self.tracker_roles.items())),
                "gamepad": self.gamepad.name if self.gamepad else None}


__all__ = ["OpenXRInput", "OPENXR_TO_MEDIAPIPE", "VIVE_TRACKER_ROLES", "hand_joints_to_mediapipe", "posef_to_pose"]
