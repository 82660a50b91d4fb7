/**
 * Every BerthError code, in one table: the gRPC kind it is always thrown with and what it
 * means. A code is a stable, machine-readable name (`<area>.<what>`) that reaches CRI clients
 * in the status details (google.rpc.ErrorInfo, reason = code) and the `berth-error-code`
 * trailer, crosses ttrpc between berth-shim and berthd the same way, and is logged with every
 * failed call. The factories in errors.ts take only codes of this table, and only with their
 * kind, so a typo or a code thrown with two kinds does not compile.
 * test/unit/error-codes.test.ts pins the table against the source (every code thrown is here,
 * every code here is thrown, names are well formed).
 *
 * Adding a code: one line here, in its area, sorted; never reuse a name with another kind or
 * meaning (clients may match on it).
 */
import type { ErrorKind } from './errors.js';

export interface ErrorCodeInfo {
  readonly kind: ErrorKind;
  /** One line: what went wrong, in words a user of berth understands. */
  readonly meaning: string;
}

/** The domain of berth's codes in google.rpc.ErrorInfo. */
export const ERROR_DOMAIN = 'berth.io';

/** Trailer (response metadata) that carries the code to gRPC clients beside the status. */
export const ERROR_CODE_TRAILER = 'berth-error-code';

export const ERROR_CODES = {
  // CDI devices (src/cdi)
  'cdi.ambiguous_device': { kind: 'InvalidArgument', meaning: 'a CDI device name is defined by two spec files of the same directory' },
  'cdi.device_not_found': { kind: 'NotFound', meaning: 'no CDI spec file defines the requested device' },
  'cdi.host_device': { kind: 'NotFound', meaning: 'a device node a CDI spec names does not exist on the host' },
  'cdi.host_path': { kind: 'NotFound', meaning: 'the host path of a CDI mount does not exist' },
  'cdi.invalid_device': { kind: 'InvalidArgument', meaning: 'a CDI device node entry is malformed (type, numbers, permissions)' },
  'cdi.invalid_mount': { kind: 'InvalidArgument', meaning: 'a CDI mount entry is malformed (relative paths, bad options)' },
  'cdi.invalid_name': { kind: 'InvalidArgument', meaning: 'a requested CDI device name is not vendor/class=name' },
  'cdi.invalid_spec': { kind: 'InvalidArgument', meaning: 'the CDI spec file that would define the device cannot be loaded' },
  'cdi.unsupported': { kind: 'InvalidArgument', meaning: 'a CDI edit runc 1.1 cannot apply (netDevices, intelRdt schemata)' },

  // CheckpointContainer (src/cri/container/checkpoint.ts)
  'checkpoint.bad_location': { kind: 'InvalidArgument', meaning: 'the checkpoint location is not an absolute path' },
  'checkpoint.bad_timeout': { kind: 'InvalidArgument', meaning: 'the checkpoint timeout is negative' },
  'checkpoint.failed': { kind: 'FailedPrecondition', meaning: 'the runtime could not checkpoint the container (CRIU failed)' },
  'checkpoint.no_location': { kind: 'InvalidArgument', meaning: 'the checkpoint request names no archive path' },
  'checkpoint.timeout': { kind: 'DeadlineExceeded', meaning: 'the checkpoint did not finish within the requested timeout' },

  // CNI (src/network)
  'cni.bad_arg': { kind: 'InvalidArgument', meaning: 'a CNI_ARGS key or value has characters CNI cannot carry' },
  'cni.bad_id': { kind: 'InvalidArgument', meaning: 'a sandbox id or network name is not safe as a CNI cache file name' },
  'cni.bad_port_mapping': { kind: 'InvalidArgument', meaning: 'a pod port mapping has a port out of range or an unknown protocol' },
  'cni.bad_result': { kind: 'Internal', meaning: 'a CNI plugin printed a result that is not a valid CNI result' },
  'cni.config_read_failed': { kind: 'Internal', meaning: 'the CNI configuration directory cannot be read' },
  'cni.no_netns': { kind: 'InvalidArgument', meaning: 'a CNI call was asked for without a network namespace path' },
  'cni.not_attached': { kind: 'NotFound', meaning: 'the sandbox has no CNI attachment to check or remove' },
  'cni.not_ready': { kind: 'FailedPrecondition', meaning: 'no usable CNI network configuration is loaded' },
  'cni.plugin_bad_output': { kind: 'Internal', meaning: 'a CNI plugin printed invalid JSON or no result' },
  'cni.plugin_exec_failed': { kind: 'Internal', meaning: 'a CNI plugin binary could not be executed' },
  'cni.plugin_failed': { kind: 'Internal', meaning: 'a CNI plugin exited with an error' },
  'cni.plugin_incompatible': { kind: 'FailedPrecondition', meaning: 'a CNI plugin refused the configuration or its CNI version' },
  'cni.plugin_not_found': { kind: 'NotFound', meaning: 'no CNI plugin binary of that type is in the configured bin dirs' },
  'cni.plugin_output_too_large': { kind: 'Internal', meaning: 'a CNI plugin printed more output than berth reads' },
  'cni.plugin_timeout': { kind: 'DeadlineExceeded', meaning: 'a CNI plugin did not finish in time and was killed' },
  'cni.plugin_unavailable': { kind: 'Unavailable', meaning: 'a CNI plugin asked to be tried again later (CNI codes 11, 50)' },

  // berthd configuration (src/daemon/config.ts)
  'config.invalid': { kind: 'InvalidArgument', meaning: 'the configuration file has a value of the wrong type, range or reference' },
  'config.syntax': { kind: 'InvalidArgument', meaning: 'the configuration file is not valid TOML' },
  'config.unreadable': { kind: 'InvalidArgument', meaning: 'the configuration file cannot be read' },

  // Container RPCs (src/cri/container)
  'container.ambiguous_id': { kind: 'InvalidArgument', meaning: 'a container id prefix matches more than one container' },
  'container.bad_log_path': { kind: 'InvalidArgument', meaning: "the container's log path leaves the pod's log directory" },
  'container.bad_mount': { kind: 'InvalidArgument', meaning: 'a container mount has a relative or unusable host path' },
  'container.bad_name': { kind: 'InvalidArgument', meaning: 'the container metadata name is too long' },
  'container.bad_transition': { kind: 'FailedPrecondition', meaning: 'the container record cannot move to that state from its current one' },
  'container.empty_id': { kind: 'InvalidArgument', meaning: 'the request names no container id' },
  'container.idmap_mappings': { kind: 'InvalidArgument', meaning: "an idmapped mount's mappings differ from the pod's user namespace mappings" },
  'container.idmap_mount': { kind: 'Internal', meaning: 'making an idmapped mount failed in the kernel' },
  'container.idmap_rootfs': { kind: 'Internal', meaning: "the pod's image layers could not be idmapped for its user namespace" },
  'container.idmap_without_userns': { kind: 'InvalidArgument', meaning: 'an idmapped mount was asked for in a pod without a user namespace' },
  'container.image_not_found': { kind: 'NotFound', meaning: "the container's image is not stored (CreateContainer does not pull)" },
  'container.image_volume': { kind: 'InvalidArgument', meaning: 'an image volume mount is malformed (needs readonly, no host_path, no recursive read-only)' },
  'container.image_volume_key': { kind: 'Internal', meaning: 'the view key of an image volume could not be derived' },
  'container.image_volume_mount': { kind: 'Internal', meaning: "the pod's view of an image volume could not be mounted" },
  'container.image_volume_not_found': { kind: 'NotFound', meaning: 'the image of an image volume mount is not stored (kubelet pulls it first)' },
  'container.image_volume_sub_path': { kind: 'InvalidArgument', meaning: 'an image volume sub path is malformed, not a directory or leads out of the image' },
  'container.image_volume_sub_path_failed': { kind: 'Internal', meaning: 'resolving an image volume sub path inside its view failed' },
  'container.image_volume_sub_path_not_found': { kind: 'NotFound', meaning: 'an image volume sub path does not exist in the image' },
  'container.no_config': { kind: 'InvalidArgument', meaning: 'CreateContainer was sent without a config' },
  'container.no_image': { kind: 'InvalidArgument', meaning: 'the container config names no image' },
  'container.no_name': { kind: 'InvalidArgument', meaning: 'the container config has no metadata name' },
  'container.no_resources': { kind: 'InvalidArgument', meaning: 'UpdateContainerResources was sent without linux resources' },
  'container.not_created': { kind: 'FailedPrecondition', meaning: 'only a created container can be started' },
  'container.not_found': { kind: 'NotFound', meaning: 'no container has that id' },
  'container.not_running': { kind: 'FailedPrecondition', meaning: 'the operation needs a running container' },
  'container.rro_unsupported': { kind: 'InvalidArgument', meaning: 'a recursive read-only mount was asked for and the runtime handler cannot make one' },
  'container.seccomp_profile': { kind: 'InvalidArgument', meaning: "the container's localhost seccomp profile cannot be read or is not JSON" },
  'container.target_not_found': { kind: 'NotFound', meaning: 'the container whose pid namespace is to be shared does not exist' },
  'container.target_not_running': { kind: 'FailedPrecondition', meaning: 'the container whose pid namespace is to be shared is not running' },
  'container.target_other_pod': { kind: 'InvalidArgument', meaning: 'the container whose pid namespace is to be shared belongs to another pod' },

  // Content store (src/core/content)
  'content.digest_mismatch': { kind: 'FailedPrecondition', meaning: 'downloaded content does not hash to the digest it was asked for' },
  'content.ingest_aborted': { kind: 'Canceled', meaning: 'writing a blob into the content store was aborted' },
  'content.invalid_digest': { kind: 'InvalidArgument', meaning: 'a digest is malformed or uses an unsupported algorithm' },
  'content.invalid_size': { kind: 'InvalidArgument', meaning: 'a descriptor has a negative or non-integer size' },
  'content.not_found': { kind: 'NotFound', meaning: 'no blob with that digest is in the content store' },
  'content.size_mismatch': { kind: 'FailedPrecondition', meaning: 'a blob has more or fewer bytes than its descriptor says' },
  'content.too_large': { kind: 'ResourceExhausted', meaning: 'a blob read into memory is over its size limit' },

  // ExecSync and Exec (src/cri/stream)
  'exec.bad_timeout': { kind: 'InvalidArgument', meaning: 'the ExecSync timeout is negative' },
  'exec.cancelled': { kind: 'Canceled', meaning: 'the client cancelled the ExecSync call; the command was killed' },
  'exec.empty_cmd': { kind: 'InvalidArgument', meaning: 'the exec request has no command' },
  'exec.no_spec': { kind: 'FailedPrecondition', meaning: "the container's runtime spec is gone (its task was removed)" },
  'exec.no_streams': { kind: 'InvalidArgument', meaning: 'the exec request asks for none of stdin, stdout and stderr' },
  'exec.timeout': { kind: 'DeadlineExceeded', meaning: 'the ExecSync command ran past its timeout and was killed' },
  'exec.tty_stderr': { kind: 'InvalidArgument', meaning: 'an exec asked for a tty and a separate stderr' },

  // Fault injection for tests (src/fault.ts)
  'fault.bad_spec': { kind: 'InvalidArgument', meaning: 'BERTH_FAULT is malformed (berthd refuses to start)' },
  'fault.injected': { kind: 'Unavailable', meaning: 'a fault injected by BERTH_FAULT for a test' },

  // Images (src/core/images, src/cri/image)
  'image.ambiguous_id': { kind: 'InvalidArgument', meaning: 'an image id prefix matches more than one image' },
  'image.bad_config': { kind: 'InvalidArgument', meaning: "the image config is invalid or does not match the manifest's layers" },
  'image.bad_manifest': { kind: 'InvalidArgument', meaning: 'the image manifest or index is invalid' },
  'image.blob_not_found': { kind: 'NotFound', meaning: 'the registry has no blob with a digest the image references' },
  'image.config_too_large': { kind: 'InvalidArgument', meaning: 'the image config is larger than berth accepts' },
  'image.empty_reference': { kind: 'InvalidArgument', meaning: 'the request names no image' },
  'image.in_use_as_volume': { kind: 'FailedPrecondition', meaning: 'RemoveImage of an image a container mounts as an image volume' },
  'image.invalid_platform': { kind: 'InvalidArgument', meaning: 'a platform string is not os/arch[/variant]' },
  'image.invalid_reference': { kind: 'InvalidArgument', meaning: 'an image reference cannot be parsed' },
  'image.manifest_missing': { kind: 'NotFound', meaning: "the stored index has no stored manifest for the image's config" },
  'image.not_found': { kind: 'NotFound', meaning: 'the image is neither stored nor on the registry' },
  'image.platform_not_found': { kind: 'NotFound', meaning: 'the image index has no manifest for the requested platform' },
  'image.pull_canceled': { kind: 'Canceled', meaning: 'the pull was cancelled before it finished' },
  'image.schema1': { kind: 'InvalidArgument', meaning: 'a stored or given manifest is Docker schema 1, which berth does not read' },
  'image.schema1_unsupported': { kind: 'Unimplemented', meaning: 'the registry serves the image only as Docker schema 1' },
  'image.unsupported_layer': { kind: 'InvalidArgument', meaning: 'an image layer has a media type berth cannot unpack' },
  'image.unsupported_media_type': { kind: 'FailedPrecondition', meaning: 'the registry answered with a manifest media type berth does not read' },
  'image.vanished': { kind: 'Internal', meaning: 'a just-pulled image was removed before it could be returned' },

  // Catch-all
  'internal.unexpected': { kind: 'Internal', meaning: 'an error that is not a BerthError (a bug or an unclassified library failure)' },

  // Metadata store (src/core/metadata)
  'metadata.record_too_new': { kind: 'FailedPrecondition', meaning: 'a metadata record was written by a newer berthd than this one' },
  'metadata.schema_too_new': { kind: 'FailedPrecondition', meaning: 'the metadata database was written by a newer berthd than this one' },

  // mount(2) (src/mount.ts)
  'mount.options_too_long': { kind: 'InvalidArgument', meaning: 'mount options are longer than the kernel accepts (one page)' },

  // Names and namespaces (src/core/metadata)
  'name.reserved': { kind: 'AlreadyExists', meaning: 'the pod or container name is already taken by another object' },
  'namespace.invalid': { kind: 'InvalidArgument', meaning: 'the berth-namespace request metadata is not a valid namespace name' },

  // Network namespaces (src/network)
  'netns.bad_name': { kind: 'InvalidArgument', meaning: 'a network namespace name is not a safe file name' },
  'netns.create_failed': { kind: 'Internal', meaning: 'creating or setting up a network namespace failed' },
  'netns.dialer': { kind: 'Unavailable', meaning: "port-forward's dialer thread for pod network namespaces is not available" },
  'netns.dir_mount_failed': { kind: 'Internal', meaning: 'the netns directory could not be made a shared mount' },
  'netns.exec_failed': { kind: 'Internal', meaning: 'a helper command (mount, unshare, ip) could not be run or failed' },
  'netns.exec_timeout': { kind: 'DeadlineExceeded', meaning: 'a helper command (mount, unshare, ip) did not finish in time' },
  'netns.exists': { kind: 'AlreadyExists', meaning: 'a network namespace of that name already exists' },
  'netns.not_found': { kind: 'NotFound', meaning: 'the network namespace does not exist' },
  'netns.remove_failed': { kind: 'Internal', meaning: 'a network namespace could not be unmounted or removed' },
  'netns.socket': { kind: 'Unavailable', meaning: "a socket could not be made inside the pod's network namespace" },

  // OCI spec generation (src/oci)
  'oci.device_not_found': { kind: 'InvalidArgument', meaning: 'a requested device path is not a device node on the host' },
  'oci.group_not_found': { kind: 'InvalidArgument', meaning: "a group name is not in the image's /etc/group" },
  'oci.invalid_argument': { kind: 'InvalidArgument', meaning: 'a container or sandbox config field has a value berth refuses (the message names the field)' },
  'oci.invalid_capability': { kind: 'InvalidArgument', meaning: 'an unknown Linux capability name' },
  'oci.invalid_device': { kind: 'InvalidArgument', meaning: 'a device request has bad permissions or cannot be resolved' },
  'oci.invalid_env': { kind: 'InvalidArgument', meaning: 'an environment variable name or image Env entry is invalid' },
  'oci.invalid_mount': { kind: 'InvalidArgument', meaning: 'a mount request has a combination of options berth refuses' },
  'oci.invalid_namespace': { kind: 'InvalidArgument', meaning: 'a namespace mode is unsupported or has nothing to join' },
  'oci.invalid_seccomp': { kind: 'InvalidArgument', meaning: 'a seccomp profile choice or profile document is invalid' },
  'oci.invalid_sysctl': { kind: 'InvalidArgument', meaning: 'a sysctl name is invalid or not namespaced' },
  'oci.invalid_user': { kind: 'InvalidArgument', meaning: 'a user or group given to run as is invalid' },
  'oci.invalid_userns': { kind: 'InvalidArgument', meaning: 'user namespace mappings are missing or invalid' },
  'oci.mount_propagation': { kind: 'InvalidArgument', meaning: 'a mount asks for propagation its host path is not mounted with' },
  'oci.no_command': { kind: 'InvalidArgument', meaning: 'neither the config nor the image gives a command to run' },
  'oci.privileged_not_allowed': { kind: 'InvalidArgument', meaning: 'a privileged container was asked for in a pod that is not privileged' },
  'oci.seccomp_unsupported': { kind: 'InvalidArgument', meaning: 'a seccomp profile was asked for and this node has no seccomp' },
  'oci.too_many_volumes': { kind: 'InvalidArgument', meaning: 'the image declares more volumes than berth accepts' },
  'oci.user_db_too_large': { kind: 'InvalidArgument', meaning: "the image's /etc/passwd or /etc/group is larger than berth reads" },
  'oci.user_not_found': { kind: 'InvalidArgument', meaning: "a user name is not in the image's /etc/passwd" },

  // Pinned pod namespaces (src/network/pin.ts)
  'pin.bad_name': { kind: 'InvalidArgument', meaning: 'a pod namespace handle name is not a safe file name' },
  'pin.create_failed': { kind: 'Internal', meaning: 'a pod namespace handle file could not be created' },
  'pin.exec_failed': { kind: 'Internal', meaning: 'the process that holds the pod namespaces could not be started' },
  'pin.exists': { kind: 'AlreadyExists', meaning: 'a pod namespace handle of that name already exists' },
  'pin.failed': { kind: 'Internal', meaning: "pinning the pod's namespaces failed" },
  'pin.remove_failed': { kind: 'Internal', meaning: 'a pod namespace handle could not be unmounted or removed' },
  'pin.timeout': { kind: 'DeadlineExceeded', meaning: "pinning the pod's namespaces did not finish in time" },
  'pin.unsupported_arch': { kind: 'FailedPrecondition', meaning: 'pinned pod namespaces are not supported on this CPU architecture' },

  // PortForward (src/cri/stream/port-forward.ts)
  'portforward.connect': { kind: 'Unavailable', meaning: 'nothing answered on the forwarded port inside the pod' },

  // Registry client (src/registry)
  'registry.auth_failed': { kind: 'Unauthenticated', meaning: 'the registry or its token service refused the credentials or sent an unusable challenge' },
  'registry.bad_range': { kind: 'Unavailable', meaning: 'the registry answered a resumed download with the wrong byte range' },
  'registry.canceled': { kind: 'Canceled', meaning: 'a registry request was cancelled' },
  'registry.digest_mismatch': { kind: 'FailedPrecondition', meaning: 'the registry served content whose digest differs from the one asked for' },
  'registry.error_body_too_large': { kind: 'Internal', meaning: 'a registry error response was larger than berth reads' },
  'registry.insecure_url': { kind: 'PermissionDenied', meaning: 'plain http to a registry that is not loopback or allowed in the config' },
  'registry.invalid_auth': { kind: 'InvalidArgument', meaning: 'a configured auth value is not base64 of username:password' },
  'registry.invalid_descriptor': { kind: 'InvalidArgument', meaning: 'a descriptor to fetch has an invalid digest or size' },
  'registry.invalid_endpoint': { kind: 'InvalidArgument', meaning: 'a configured registry endpoint is not an http(s) URL' },
  'registry.manifest_too_large': { kind: 'ResourceExhausted', meaning: 'a manifest is larger than berth reads' },
  'registry.no_endpoints': { kind: 'Internal', meaning: 'a registry has no endpoint to try' },
  'registry.permission_denied': { kind: 'PermissionDenied', meaning: 'the registry denied access to the repository (HTTP 403)' },
  'registry.rate_limited': { kind: 'ResourceExhausted', meaning: 'the registry is rate limiting pulls (HTTP 429)' },
  'registry.redirect_refused': { kind: 'PermissionDenied', meaning: 'a redirect would re-send a request body to another origin' },
  'registry.size_mismatch': { kind: 'FailedPrecondition', meaning: 'the registry served more or fewer bytes than the descriptor says' },
  'registry.token_service_failed': { kind: 'Unavailable', meaning: 'the token service answered with an error or an unusable token' },
  'registry.too_many_redirects': { kind: 'Unavailable', meaning: 'the registry redirected too many times' },
  'registry.unauthenticated': { kind: 'Unauthenticated', meaning: 'the registry needs credentials, or rejected the ones sent (HTTP 401)' },
  'registry.unavailable': { kind: 'Unavailable', meaning: 'the registry could not be reached or failed (network error, HTTP 5xx)' },
  'registry.unexpected_status': { kind: 'Internal', meaning: 'the registry answered with an HTTP status berth does not expect' },

  // Request checks before any handler (src/cri/server)
  'request.bad_enum': { kind: 'InvalidArgument', meaning: 'a request enum field has a value its enum does not define' },
  'rpc.unimplemented': { kind: 'Unimplemented', meaning: 'berth does not implement this RPC' },

  // runc, as run by berth-shim (src/shim)
  'runc.already_exists': { kind: 'AlreadyExists', meaning: 'runc says a container of that id already exists' },
  'runc.bad_pid_file': { kind: 'Internal', meaning: 'a pid file written by runc holds no valid pid' },
  'runc.checkpoint_failed': { kind: 'FailedPrecondition', meaning: 'runc checkpoint (CRIU) failed' },
  'runc.failed': { kind: 'Internal', meaning: 'a runc command failed (its own error text is the message)' },
  'runc.not_found': { kind: 'NotFound', meaning: 'runc says the container does not exist' },
  'runc.wrong_state': { kind: 'FailedPrecondition', meaning: 'runc refused because the container is in the wrong state (not running, paused, stopped)' },

  // Tasks, daemon side (src/runtime)
  'runtime.bad_id': { kind: 'InvalidArgument', meaning: 'a task id is not a safe path component' },
  'runtime.bad_namespace': { kind: 'InvalidArgument', meaning: 'a task namespace is not a safe path component' },
  'runtime.bad_pod_cidr': { kind: 'InvalidArgument', meaning: 'UpdateRuntimeConfig was sent a pod CIDR that is not a CIDR' },
  'runtime.bad_shim_type': { kind: 'InvalidArgument', meaning: 'a runtime type is not io.containerd.<name>.<version>' },
  'runtime.bundle_mounted': { kind: 'FailedPrecondition', meaning: 'a task bundle still has mounts and cannot be removed' },
  'runtime.exec_id': { kind: 'InvalidArgument', meaning: 'an exec was asked for without an exec id' },
  'runtime.handler_not_found': { kind: 'NotFound', meaning: 'no runtime handler of that name is configured' },
  'runtime.shim_bad_address': { kind: 'Internal', meaning: "a shim's start printed no usable ttrpc address" },
  'runtime.shim_delete': { kind: 'Internal', meaning: "a shim binary's delete command failed" },
  'runtime.shim_exec': { kind: 'FailedPrecondition', meaning: 'a shim binary could not be executed' },
  'runtime.shim_exec_timeout': { kind: 'DeadlineExceeded', meaning: 'a shim binary command did not answer in time' },
  'runtime.shim_not_found': { kind: 'FailedPrecondition', meaning: "the runtime handler's shim binary is not on PATH" },
  'runtime.shim_protocol': { kind: 'Unimplemented', meaning: 'the shim speaks a protocol other than ttrpc' },
  'runtime.shim_start': { kind: 'FailedPrecondition', meaning: "a shim binary's start command failed" },
  'runtime.shim_transition': { kind: 'Internal', meaning: 'a shim connection was asked to change state in a way its state table forbids (a bug)' },
  'runtime.stats_empty': { kind: 'Internal', meaning: 'the shim returned no stats for a task' },
  'runtime.stats_type': { kind: 'Internal', meaning: 'the shim returned stats of a type berth does not decode' },
  'runtime.task_exists': { kind: 'AlreadyExists', meaning: 'a task of that id already exists in the namespace' },
  'runtime.task_exited': { kind: 'FailedPrecondition', meaning: 'the task has exited or lost its shim' },
  'runtime.task_not_found': { kind: 'NotFound', meaning: 'no task of that id in the namespace' },
  'runtime.userns_no_root_gid': { kind: 'InvalidArgument', meaning: 'the user namespace gid mappings do not map container gid 0' },

  // Pod sandbox RPCs (src/cri/sandbox)
  'sandbox.ambiguous_id': { kind: 'InvalidArgument', meaning: 'a pod sandbox id prefix matches more than one sandbox' },
  'sandbox.bad_config': { kind: 'InvalidArgument', meaning: 'the pod sandbox config or its metadata is missing or incomplete' },
  'sandbox.bad_dns': { kind: 'InvalidArgument', meaning: 'a DNS server, search domain or option is empty or has a line break' },
  'sandbox.bad_transition': { kind: 'FailedPrecondition', meaning: 'the pod sandbox record cannot move to that state from its current one' },
  'sandbox.empty_id': { kind: 'InvalidArgument', meaning: 'the request names no pod sandbox id' },
  'sandbox.no_id': { kind: 'InvalidArgument', meaning: 'UpdatePodSandboxResources names no pod sandbox id' },
  'sandbox.no_netns': { kind: 'FailedPrecondition', meaning: 'the pod sandbox has no network namespace' },
  'sandbox.no_pid': { kind: 'FailedPrecondition', meaning: "the pod's pause process is not running" },
  'sandbox.no_resources': { kind: 'InvalidArgument', meaning: 'UpdatePodSandboxResources names neither overhead nor resources' },
  'sandbox.not_found': { kind: 'NotFound', meaning: 'no pod sandbox has that id' },
  'sandbox.not_ready': { kind: 'FailedPrecondition', meaning: 'the pod sandbox is not ready' },
  'sandbox.seccomp_profile': { kind: 'InvalidArgument', meaning: "the sandbox's localhost seccomp profile cannot be read or is not JSON" },
  'sandbox.shm_mount': { kind: 'Internal', meaning: "the pod's /dev/shm tmpfs could not be mounted" },
  'sandbox.shm_unmount': { kind: 'Internal', meaning: "the pod's /dev/shm tmpfs could not be unmounted" },
  'sandbox.unknown_runtime_handler': { kind: 'InvalidArgument', meaning: 'RunPodSandbox names a runtime handler that is not configured' },
  'sandbox.userns_unreachable': { kind: 'FailedPrecondition', meaning: "a directory above berth's state dir is not searchable by a pod's mapped root" },

  // berth-shim (src/shim)
  'shim.bad_bundle': { kind: 'InvalidArgument', meaning: "the bundle's config.json cannot be read or is not JSON" },
  'shim.bad_checkpoint': { kind: 'InvalidArgument', meaning: 'a checkpoint request names no image path' },
  'shim.bad_exec': { kind: 'InvalidArgument', meaning: 'an exec request names no exec id' },
  'shim.bad_exec_spec': { kind: 'InvalidArgument', meaning: 'an exec request has no or an invalid process spec' },
  'shim.bad_id': { kind: 'InvalidArgument', meaning: 'a container or exec id is not a safe path component' },
  'shim.bad_resources': { kind: 'InvalidArgument', meaning: 'an update request carries resources that are not LinuxResources JSON' },
  'shim.bad_signal': { kind: 'InvalidArgument', meaning: 'a kill request names an invalid signal' },
  'shim.bad_state': { kind: 'FailedPrecondition', meaning: 'the process is not in a state that allows the operation' },
  'shim.bad_stdin': { kind: 'InvalidArgument', meaning: 'stdin is not a FIFO, or not attach://stdin for a CRI container' },
  'shim.bad_stdio': { kind: 'InvalidArgument', meaning: 'a stdio URI has a scheme berth-shim does not take' },
  'shim.bad_transition': { kind: 'FailedPrecondition', meaning: 'a process was asked to change state in a way its state table forbids' },
  'shim.container_exists': { kind: 'AlreadyExists', meaning: 'the shim already has a container of that id' },
  'shim.container_not_found': { kind: 'NotFound', meaning: 'the shim has no container of that id' },
  'shim.creating': { kind: 'FailedPrecondition', meaning: 'the container is still being created' },
  'shim.exec_exists': { kind: 'AlreadyExists', meaning: 'the container already has an exec of that id' },
  'shim.exec_not_found': { kind: 'NotFound', meaning: 'the container has no exec of that id' },
  'shim.mount_failed': { kind: 'Internal', meaning: "mounting a container's rootfs failed" },
  'shim.no_cgroup': { kind: 'FailedPrecondition', meaning: 'the container has no cgroup to read stats from' },
  'shim.no_monitor': { kind: 'FailedPrecondition', meaning: "the process's conmon is not listening on its control FIFO" },
  'shim.no_terminal': { kind: 'FailedPrecondition', meaning: 'a resize was asked for a process without a terminal' },
  'shim.process_finished': { kind: 'NotFound', meaning: 'the process has already exited' },
  'shim.restore': { kind: 'Unimplemented', meaning: 'berth-shim cannot restore a container from a checkpoint' },
  'shim.wait_canceled': { kind: 'Canceled', meaning: 'a wait for a process exit was cancelled' },

  // Snapshots (src/core/snapshots)
  'snapshot.committed': { kind: 'FailedPrecondition', meaning: 'the snapshot is committed and cannot be mounted read-write' },
  'snapshot.exists': { kind: 'AlreadyExists', meaning: 'a snapshot of that key already exists' },
  'snapshot.has_children': { kind: 'FailedPrecondition', meaning: 'the snapshot has children and cannot be removed' },
  'snapshot.invalid_key': { kind: 'InvalidArgument', meaning: 'a snapshot key or parent is empty or invalid' },
  'snapshot.not_active': { kind: 'FailedPrecondition', meaning: 'the operation needs an active snapshot' },
  'snapshot.not_found': { kind: 'NotFound', meaning: 'no snapshot of that key' },
  'snapshot.not_initialized': { kind: 'FailedPrecondition', meaning: 'the snapshotter was used before init()' },
  'snapshot.overlay_unsupported': { kind: 'FailedPrecondition', meaning: 'the overlay snapshotter was asked for and overlayfs is not usable here' },
  'snapshot.parent_not_committed': { kind: 'FailedPrecondition', meaning: 'a snapshot parent is not committed' },
  'snapshot.parent_not_found': { kind: 'NotFound', meaning: 'a snapshot parent does not exist or is being removed' },
  'snapshot.remap_unmapped_id': { kind: 'FailedPrecondition', meaning: "an image file is owned by an id the pod's user namespace does not map" },
  'snapshot.schema_too_new': { kind: 'FailedPrecondition', meaning: 'the snapshot metadata database was written by a newer berthd than this one' },

  // SPDY streaming (src/streaming/spdy)
  'spdy.bad_header_block': { kind: 'InvalidArgument', meaning: 'a SPDY header block does not decode' },
  'spdy.frame_too_large': { kind: 'InvalidArgument', meaning: 'a SPDY frame is larger than the protocol allows' },
  'spdy.header_block_too_large': { kind: 'InvalidArgument', meaning: 'a SPDY header block inflates past its budget' },
  'spdy.inflate_busy': { kind: 'Internal', meaning: 'two SPDY header blocks were inflated at once (a bug)' },
  'spdy.ping_timeout': { kind: 'DeadlineExceeded', meaning: 'the SPDY peer did not answer a PING' },
  'spdy.protocol_error': { kind: 'InvalidArgument', meaning: 'the SPDY peer broke the protocol' },
  'spdy.session_closed': { kind: 'Unavailable', meaning: 'the SPDY session is going away' },
  'spdy.unsupported_version': { kind: 'InvalidArgument', meaning: 'a SPDY frame has a version other than 3' },

  // Statuses from peers that sent no berth code (gRPC or ttrpc; src/errors.ts fromStatus)
  'status.aborted': { kind: 'Aborted', meaning: 'a peer answered ABORTED without a berth code' },
  'status.already_exists': { kind: 'AlreadyExists', meaning: 'a peer answered ALREADY_EXISTS without a berth code' },
  'status.canceled': { kind: 'Canceled', meaning: 'a peer answered CANCELLED without a berth code' },
  'status.deadline_exceeded': { kind: 'DeadlineExceeded', meaning: 'a peer answered DEADLINE_EXCEEDED without a berth code' },
  'status.failed_precondition': { kind: 'FailedPrecondition', meaning: 'a peer answered FAILED_PRECONDITION without a berth code' },
  'status.internal': { kind: 'Internal', meaning: 'a peer answered INTERNAL or UNKNOWN without a berth code' },
  'status.invalid_argument': { kind: 'InvalidArgument', meaning: 'a peer answered INVALID_ARGUMENT without a berth code' },
  'status.not_found': { kind: 'NotFound', meaning: 'a peer answered NOT_FOUND without a berth code' },
  'status.out_of_range': { kind: 'OutOfRange', meaning: 'a peer answered OUT_OF_RANGE without a berth code' },
  'status.permission_denied': { kind: 'PermissionDenied', meaning: 'a peer answered PERMISSION_DENIED without a berth code' },
  'status.resource_exhausted': { kind: 'ResourceExhausted', meaning: 'a peer answered RESOURCE_EXHAUSTED without a berth code' },
  'status.unauthenticated': { kind: 'Unauthenticated', meaning: 'a peer answered UNAUTHENTICATED without a berth code' },
  'status.unavailable': { kind: 'Unavailable', meaning: 'a peer answered UNAVAILABLE without a berth code' },
  'status.unimplemented': { kind: 'Unimplemented', meaning: 'a peer answered UNIMPLEMENTED without a berth code' },

  // Disk full (src/errors.ts toBerthError)
  'storage.no_space': { kind: 'ResourceExhausted', meaning: 'the disk (or quota) under berth is full' },

  // Streaming server (src/streaming)
  'streaming.bad_address': { kind: 'InvalidArgument', meaning: 'the streaming address is not host:port' },
  'streaming.bad_port': { kind: 'InvalidArgument', meaning: 'a port-forward port is out of range' },
  'streaming.missing_cmd': { kind: 'InvalidArgument', meaning: 'an exec streaming request has no command' },
  'streaming.missing_container_id': { kind: 'InvalidArgument', meaning: 'an exec or attach streaming request names no container' },
  'streaming.missing_pod_sandbox_id': { kind: 'InvalidArgument', meaning: 'a port-forward streaming request names no pod sandbox' },
  'streaming.no_streams': { kind: 'InvalidArgument', meaning: 'a streaming request asks for none of stdin, stdout and stderr' },
  'streaming.not_started': { kind: 'FailedPrecondition', meaning: 'the streaming server is not running' },
  'streaming.too_many_requests': { kind: 'ResourceExhausted', meaning: 'too many streaming URLs are waiting for their client' },
  'streaming.tty_with_stderr': { kind: 'InvalidArgument', meaning: 'a streaming request asked for a tty and a separate stderr' },

  // berth.v1 Trace (src/cri/observe/berth-trace.ts)
  'trace.empty_id': { kind: 'InvalidArgument', meaning: 'Trace names no pod sandbox id' },
  'trace.not_found': { kind: 'NotFound', meaning: 'no startup trace is recorded for that pod sandbox' },

  // ttrpc (src/ttrpc)
  'ttrpc.bad_frame': { kind: 'Internal', meaning: 'the ttrpc peer sent a frame of an unexpected type' },
  'ttrpc.bad_frame_header': { kind: 'InvalidArgument', meaning: 'a ttrpc frame header is garbage (reserved length byte set)' },
  'ttrpc.bad_payload': { kind: 'Internal', meaning: 'a ttrpc request or response payload does not decode' },
  'ttrpc.bad_response': { kind: 'Internal', meaning: 'a ttrpc response envelope does not decode' },
  'ttrpc.canceled': { kind: 'Canceled', meaning: 'a ttrpc call was cancelled by its caller' },
  'ttrpc.closed': { kind: 'Unavailable', meaning: 'the ttrpc connection failed or was closed' },
  'ttrpc.conn_closed': { kind: 'Canceled', meaning: 'the ttrpc client went away while its call ran' },
  'ttrpc.connect': { kind: 'Unavailable', meaning: 'connecting to a ttrpc socket failed' },
  'ttrpc.deadline_exceeded': { kind: 'DeadlineExceeded', meaning: 'a ttrpc call ran past its deadline' },
  'ttrpc.duplicate_method': { kind: 'AlreadyExists', meaning: 'a ttrpc method was registered twice (a bug)' },
  'ttrpc.encode': { kind: 'Internal', meaning: 'a ttrpc request could not be encoded' },
  'ttrpc.listen': { kind: 'Unavailable', meaning: 'a ttrpc server could not listen on its socket' },
  'ttrpc.message_too_large': { kind: 'ResourceExhausted', meaning: 'a ttrpc message is over the 4 MiB limit' },
  'ttrpc.path_exists': { kind: 'AlreadyExists', meaning: 'the ttrpc socket path exists and is not a socket' },
  'ttrpc.server_closed': { kind: 'Unavailable', meaning: 'the ttrpc server is shutting down' },
  'ttrpc.socket_dir': { kind: 'FailedPrecondition', meaning: "the ttrpc socket's directory is not a directory owned by berth's uid" },
  'ttrpc.stream_ids_exhausted': { kind: 'Unavailable', meaning: 'a ttrpc connection used up its stream ids' },
  'ttrpc.streaming': { kind: 'Unimplemented', meaning: 'a streaming ttrpc method was asked for; only unary ones are served' },

  // Layer unpacking (src/core/unpack)
  'unpack.bad_entry': { kind: 'InvalidArgument', meaning: 'a layer tar entry has a NUL byte in its name or a symlink without target' },
  'unpack.bad_hardlink': { kind: 'InvalidArgument', meaning: 'a layer hard link points outside the layer or at nothing' },
  'unpack.bad_id': { kind: 'InvalidArgument', meaning: 'a layer entry has a uid or gid out of range' },
  'unpack.bad_tar': { kind: 'InvalidArgument', meaning: 'a layer is not a valid tar stream' },
  'unpack.bad_whiteout': { kind: 'InvalidArgument', meaning: 'a layer has a malformed whiteout marker' },
  'unpack.bad_xattr': { kind: 'InvalidArgument', meaning: 'a layer entry has an extended attribute berth refuses' },
  'unpack.bad_zstd': { kind: 'InvalidArgument', meaning: 'a zstd-compressed layer does not decompress' },
  'unpack.diffid_mismatch': { kind: 'FailedPrecondition', meaning: "an unpacked layer's digest differs from the image config's diff_id" },
  'unpack.invalid_path': { kind: 'InvalidArgument', meaning: 'a layer entry path is invalid (names the root, has a NUL)' },
  'unpack.layer_too_large': { kind: 'ResourceExhausted', meaning: 'a layer inflates past the size limit' },
  'unpack.not_a_directory': { kind: 'InvalidArgument', meaning: 'a layer uses a path as a directory that is not one' },
  'unpack.path_too_long': { kind: 'InvalidArgument', meaning: 'a layer entry name or link target is longer than PATH_MAX' },
  'unpack.reservation_used': { kind: 'Internal', meaning: 'an unpack worker reservation was used twice (a bug)' },
  'unpack.source_closed': { kind: 'Canceled', meaning: 'the layer stream closed before unpacking began' },
  'unpack.too_many_links': { kind: 'InvalidArgument', meaning: 'resolving a layer path follows too many symlinks' },
  'unpack.unsupported_entry': { kind: 'InvalidArgument', meaning: 'a layer has a tar entry type berth does not unpack' },
  'unpack.unsupported_media_type': { kind: 'InvalidArgument', meaning: 'a layer has a compression berth cannot decompress' },
  'unpack.worker_exited': { kind: 'Internal', meaning: 'an unpack worker thread died' },
} as const satisfies Record<string, ErrorCodeInfo>;

/** A code of the table. */
export type ErrorCode = keyof typeof ERROR_CODES;

/** The kind a code is always thrown with. */
export type KindOf<C extends ErrorCode> = (typeof ERROR_CODES)[C]['kind'];

/** The codes of one kind: what a factory such as `errors.notFound` accepts. */
export type CodeOf<K extends ErrorKind> = { [C in ErrorCode]: KindOf<C> extends K ? C : never }[ErrorCode];

const table: Readonly<Record<string, ErrorCodeInfo>> = ERROR_CODES;

/** True for a code of the table (for codes that arrive from a peer or a worker). */
export function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(table, code);
}

export function kindOf<C extends ErrorCode>(code: C): KindOf<C> {
  return table[code]!.kind as KindOf<C>;
}

export function meaningOf(code: ErrorCode): string {
  return table[code]!.meaning;
}
