//! The table of fields: for each one its public [`FieldInfo`] and the private [`Recipe`] that
//! says how to extract it. Both arrays are generated from one list so they cannot drift apart.
//!
//! Field names, list flags and argument kinds follow Falco 0.44.1's own listing
//! (`falco --list=k8s_audit`); the descriptions are kaudit's.

use super::{ArgSpec, Body, FieldInfo, Output, ValueKind};

/// Which container array of the pod spec a per-container field reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum ContainerList {
    /// `spec.containers`
    Containers,
    /// `spec.initContainers`
    InitContainers,
    /// `spec.ephemeralContainers`
    EphemeralContainers,
}

/// What a per-container field reads from each container.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum ContainerAttr {
    /// `name`; no value at all if one container has none.
    Name,
    /// `image`; no value at all if one container has none.
    Image,
    /// `image` cut at the first `:` and then at the first `@`.
    Repository,
    /// `command` joined with spaces.
    Command,
    /// `args` joined with spaces.
    Args,
    /// `securityContext.<key>`, only containers that set it.
    Security(&'static str),
    /// `securityContext.capabilities.add` as one compact JSON value per container.
    AddCapabilities,
    /// `<key>` directly under the container (sic), defaulting to `spec.<key>` (sic) or `0`.
    EffectiveRunAs(&'static str),
    /// Each entry of `ports`: `hostPort`, else `containerPort`.
    HostPort,
}

/// How a field is extracted (see `extract.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum Recipe {
    EvtNum,
    EvtTime,
    EvtTimeS,
    EvtTimeIso8601,
    EvtDatetime,
    EvtDatetimeS,
    EvtRawtime,
    EvtRawtimeS,
    EvtRawtimeNs,
    EvtReltime,
    EvtReltimeS,
    EvtReltimeNs,
    EvtPluginName,
    EvtPluginInfo,
    EvtSource,
    EvtIsAsync,
    EvtAsyncType,
    EvtHostname,
    AuditId,
    Stage,
    /// One member of `annotations`.
    Annotation(&'static str),
    UserName,
    UserGroups,
    ImpersonatedUserName,
    Verb,
    Uri,
    UriParam,
    TargetName,
    TargetNamespace,
    TargetResource,
    TargetSubresource,
    TargetPodName,
    BindingSubjects,
    /// `name` of the subjects of this `kind`.
    SubjectNames(&'static str),
    SubjectServiceAccountNsNames,
    BindingRole,
    SubjectHasName,
    ConfigmapObj,
    Container(ContainerList, ContainerAttr),
    FirstContainerImage,
    FirstContainerRepository,
    AnyContainerPrivileged,
    /// `requestObject.spec.<key>`.
    SpecMember(&'static str),
    /// `requestObject.spec.securityContext.<key>`.
    PodSecurity(&'static str),
    SupplementalGroups,
    RoleRules,
    /// `requestObject.rules[].<key>[]`, flattened.
    RulesField(&'static str),
    ServicePorts,
    VolumeHostPaths,
    VolumeHasHostPath,
    FlexVolumeDrivers,
    VolumeTypes,
    ResponseName,
    ResponseCode,
    ResponseReason,
    UserAgent,
    JsonValue,
    JsonObj,
    JsonRawtime,
}

/// The two parallel arrays.
pub(super) struct Catalogue<const N: usize> {
    pub(super) infos: [FieldInfo; N],
    pub(super) recipes: [Recipe; N],
}

macro_rules! catalogue {
    ($( [$name:literal, $list:literal, $arg:ident, $kind:ident, $body:ident, $out:ident, $recipe:expr, $desc:literal] )*) => {
        const N_FIELDS: usize = <[&str]>::len(&[$($name),*]);

        /// Every field of the `k8s_audit` source.
        pub(super) static CATALOGUE: Catalogue<N_FIELDS> = Catalogue {
            infos: [$(FieldInfo {
                name: $name,
                list: $list,
                arg: ArgSpec::$arg,
                kind: ValueKind::$kind,
                desc: $desc,
                body: Body::$body,
                output: Output::$out,
            }),*],
            recipes: [$($recipe),*],
        };
    };
}

use ContainerAttr::{
    AddCapabilities, Args, Command, EffectiveRunAs, HostPort, Image, Name, Repository, Security,
};
use ContainerList::{Containers, EphemeralContainers, InitContainers};
use Recipe as R;

catalogue! {
    // evt.*: provided by Falco itself for every source.
    ["evt.num", false, None, Number, None, Number, R::EvtNum,
        "Number of the event in the input, counting from 1."]
    ["evt.time", false, None, String, None, Time, R::EvtTime,
        "Event time (stageTimestamp) as HH:MM:SS.nnnnnnnnn. kaudit uses UTC where Falco uses local time."]
    ["evt.time.s", false, None, String, None, Time, R::EvtTimeS,
        "Event time as HH:MM:SS, without the fraction (UTC in kaudit)."]
    ["evt.time.iso8601", false, None, String, None, Time, R::EvtTimeIso8601,
        "Event time in ISO 8601 with nanoseconds and the UTC offset, e.g. 2026-11-21T09:00:00.040000000+0000."]
    ["evt.datetime", false, None, String, None, Time, R::EvtDatetime,
        "Event date and time as YYYY-MM-DD HH:MM:SS.nnnnnnnnn (UTC in kaudit)."]
    ["evt.datetime.s", false, None, String, None, Time, R::EvtDatetimeS,
        "Event date and time as YYYY-MM-DD HH:MM:SS, without the fraction (UTC in kaudit)."]
    ["evt.rawtime", false, None, Number, None, Number, R::EvtRawtime,
        "Event time in nanoseconds since the Unix epoch, as a number."]
    ["evt.rawtime.s", false, None, Number, None, Number, R::EvtRawtimeS,
        "Whole seconds of the event time since the Unix epoch."]
    ["evt.rawtime.ns", false, None, Number, None, PaddedNanos, R::EvtRawtimeNs,
        "Nanoseconds within the second of the event time (printed with 9 digits)."]
    ["evt.reltime", false, None, Number, None, Number, R::EvtReltime,
        "Nanoseconds between the first event of the input and this one."]
    ["evt.reltime.s", false, None, Number, None, Number, R::EvtReltimeS,
        "Whole seconds between the first event of the input and this one."]
    ["evt.reltime.ns", false, None, Number, None, PaddedNanos, R::EvtReltimeNs,
        "Nanoseconds part of the time since the first event of the input (printed with 9 digits)."]
    ["evt.pluginname", false, None, String, None, Text, R::EvtPluginName,
        "Name of the plugin the event comes from: always k8saudit."]
    ["evt.plugininfo", false, None, String, Response, Text, R::EvtPluginInfo,
        "The plugin's summary of the event: the whole event as compact JSON."]
    ["evt.source", false, None, String, None, Text, R::EvtSource,
        "Name of the event source: always k8s_audit."]
    ["evt.is_async", false, None, String, None, Bool, R::EvtIsAsync,
        "Whether the event is asynchronous: always false for audit events."]
    ["evt.asynctype", false, None, String, None, Text, R::EvtAsyncType,
        "Type of an asynchronous event: audit events never have one."]
    ["evt.hostname", false, None, String, None, Text, R::EvtHostname,
        "Host name of the machine that evaluates the event, as given to the event context."]

    // ka.*: the k8saudit plugin. No value at all without a top-level auditID.
    ["ka.auditid", false, None, String, None, Text, R::AuditId,
        "auditID: the request's unique id, shared by all stages of one request."]
    ["ka.stage", false, None, String, None, Text, R::Stage,
        "stage: RequestReceived, ResponseStarted, ResponseComplete or Panic."]
    ["ka.auth.decision", false, None, String, None, Text, R::Annotation("authorization.k8s.io/decision"),
        "The authorization.k8s.io/decision annotation (allow or forbid)."]
    ["ka.auth.reason", false, None, String, None, Text, R::Annotation("authorization.k8s.io/reason"),
        "The authorization.k8s.io/reason annotation: why the authorizer decided so."]
    ["ka.auth.openshift.decision", false, None, String, None, Text,
        R::Annotation("authentication.openshift.io/decision"),
        "The authentication.openshift.io/decision annotation written by OpenShift's API server."]
    ["ka.validations.admission.policy.failure", false, None, String, None, Text,
        R::Annotation("validation.policy.admission.k8s.io/validation_failure"),
        "The validation.policy.admission.k8s.io/validation_failure annotation of a ValidatingAdmissionPolicy."]
    ["ka.security.pod.violations", false, None, String, None, Text,
        R::Annotation("pod-security.kubernetes.io/audit-violations"),
        "The pod-security.kubernetes.io/audit-violations annotation of Pod Security Admission."]
    ["ka.auth.openshift.username", false, None, String, None, Text,
        R::Annotation("authentication.openshift.io/username"),
        "The authentication.openshift.io/username annotation written by OpenShift's API server."]
    ["ka.user.name", false, None, String, None, Text, R::UserName,
        "user.username: who made the request."]
    ["ka.user.groups", true, None, String, None, Text, R::UserGroups,
        "user.groups: one value per group; no value if it is not a JSON array."]
    ["ka.impuser.name", false, None, String, None, Text, R::ImpersonatedUserName,
        "impersonatedUser.username: the identity the requester acted as."]
    ["ka.verb", false, None, String, None, Text, R::Verb,
        "verb: get, list, watch, create, update, patch, delete, deletecollection, ..."]
    ["ka.uri", false, None, String, None, Text, R::Uri,
        "requestURI: path and query string of the request."]
    ["ka.uri.param", false, RequiredKey, String, None, Text, R::UriParam,
        "First URL-decoded value of the named query parameter of requestURI; no value if absent or unparsable."]
    ["ka.target.name", false, None, String, None, Text, R::TargetName,
        "objectRef.name: the name of the object the request addressed."]
    ["ka.target.namespace", false, None, String, None, Text, R::TargetNamespace,
        "objectRef.namespace: the namespace of the object the request addressed."]
    ["ka.target.resource", false, None, String, None, Text, R::TargetResource,
        "objectRef.resource: the plural resource name (pods, secrets, ...)."]
    ["ka.target.subresource", false, None, String, None, Text, R::TargetSubresource,
        "objectRef.subresource: exec, attach, log, status, ..."]
    ["ka.target.pod.name", false, None, String, Response, Text, R::TargetPodName,
        "responseObject.metadata.name, only for requests on pods themselves (resource pods, no subresource)."]
    ["ka.req.binding.subjects", true, None, String, Request, Text, R::BindingSubjects,
        "requestObject.subjects: one compact JSON value per subject of a (Cluster)RoleBinding."]
    ["ka.req.binding.subjects.user_names", true, None, String, Request, Text, R::SubjectNames("User"),
        "Names of the binding's subjects of kind User."]
    ["ka.req.binding.subjects.serviceaccount_names", true, None, String, Request, Text,
        R::SubjectNames("ServiceAccount"),
        "Names of the binding's subjects of kind ServiceAccount."]
    ["ka.req.binding.subjects.serviceaccount_ns_names", true, None, String, Request, Text,
        R::SubjectServiceAccountNsNames,
        "namespace:name of the binding's ServiceAccount subjects that have a namespace."]
    ["ka.req.binding.subjects.group_names", true, None, String, Request, Text, R::SubjectNames("Group"),
        "Names of the binding's subjects of kind Group."]
    ["ka.req.binding.role", false, None, String, Request, Text, R::BindingRole,
        "requestObject.roleRef.name: the role a binding grants."]
    ["ka.req.binding.subject.has_name", false, RequiredKey, String, None, Text, R::SubjectHasName,
        "Deprecated: always the text true, whatever the argument (as the k8saudit plugin does)."]
    ["ka.req.configmap.name", false, None, String, None, Text, R::TargetName,
        "objectRef.name, for any resource (same as ka.target.name)."]
    ["ka.req.configmap.obj", false, None, String, Request, Text, R::ConfigmapObj,
        "requestObject.data as one compact JSON text."]
    ["ka.req.pod.containers.args", true, OptionalIndex, String, Request, Text, R::Container(Containers, Args),
        "Per container that has args: its args joined with spaces."]
    ["ka.req.pod.containers.command", true, OptionalIndex, String, Request, Text,
        R::Container(Containers, Command),
        "Per container that has a command: the command joined with spaces."]
    ["ka.req.pod.containers.name", true, OptionalIndex, String, Request, Text, R::Container(Containers, Name),
        "Names of the pod's containers; no value if one of them has no name."]
    ["ka.req.pod.containers.image", true, OptionalIndex, String, Request, Text, R::Container(Containers, Image),
        "Images of the pod's containers; no value if one of them has no image."]
    ["ka.req.container.image", false, None, String, Request, Text, R::FirstContainerImage,
        "Deprecated: image of the first container."]
    ["ka.req.pod.containers.image.repository", true, OptionalIndex, String, Request, Text,
        R::Container(Containers, Repository),
        "Images of the pod's containers cut at the first ':' and then the first '@' (reg:5000/x gives reg)."]
    ["ka.req.container.image.repository", false, None, String, Request, Text, R::FirstContainerRepository,
        "Deprecated: repository part of the first container's image."]
    ["ka.req.pod.host_ipc", false, None, String, Request, Text, R::SpecMember("hostIPC"),
        "requestObject.spec.hostIPC (true/false); no value when not set."]
    ["ka.req.pod.host_network", false, None, String, Request, Text, R::SpecMember("hostNetwork"),
        "requestObject.spec.hostNetwork (true/false); no value when not set."]
    ["ka.req.container.host_network", false, None, String, Request, Text, R::SpecMember("hostNetwork"),
        "Deprecated: same as ka.req.pod.host_network."]
    ["ka.req.pod.host_pid", false, None, String, Request, Text, R::SpecMember("hostPID"),
        "requestObject.spec.hostPID (true/false); no value when not set."]
    ["ka.req.pod.containers.host_port", true, OptionalIndex, String, Request, Text,
        R::Container(Containers, HostPort),
        "Per port of each container: hostPort, or containerPort when there is no hostPort."]
    ["ka.req.pod.containers.privileged", true, OptionalIndex, String, Request, Text,
        R::Container(Containers, Security("privileged")),
        "securityContext.privileged of the containers that set it."]
    ["ka.req.container.privileged", false, None, String, Request, Text, R::AnyContainerPrivileged,
        "Deprecated: true if any container sets securityContext.privileged to true, else false."]
    ["ka.req.pod.containers.allow_privilege_escalation", true, OptionalIndex, String, Request, Text,
        R::Container(Containers, Security("allowPrivilegeEscalation")),
        "securityContext.allowPrivilegeEscalation of the containers that set it."]
    ["ka.req.pod.containers.read_only_fs", true, OptionalIndex, String, Request, Text,
        R::Container(Containers, Security("readOnlyRootFilesystem")),
        "securityContext.readOnlyRootFilesystem of the containers that set it."]
    ["ka.req.pod.run_as_user", false, None, String, Request, Text, R::PodSecurity("runAsUser"),
        "requestObject.spec.securityContext.runAsUser: the pod-level user id."]
    ["ka.req.pod.containers.run_as_user", true, OptionalIndex, String, Request, Text,
        R::Container(Containers, Security("runAsUser")),
        "securityContext.runAsUser of the containers that set it."]
    ["ka.req.pod.containers.eff_run_as_user", true, OptionalIndex, String, Request, Text,
        R::Container(Containers, EffectiveRunAs("runAsUser")),
        "Per container: runAsUser read directly under the container, else under spec, else 0 (upstream reads \
         these paths, not securityContext, so this is 0 in practice)."]
    ["ka.req.pod.run_as_group", false, None, String, Request, Text, R::PodSecurity("runAsGroup"),
        "requestObject.spec.securityContext.runAsGroup: the pod-level group id."]
    ["ka.req.pod.containers.run_as_group", true, OptionalIndex, String, Request, Text,
        R::Container(Containers, Security("runAsGroup")),
        "securityContext.runAsGroup of the containers that set it."]
    ["ka.req.pod.containers.eff_run_as_group", true, OptionalIndex, String, Request, Text,
        R::Container(Containers, EffectiveRunAs("runAsGroup")),
        "Per container: runAsGroup read directly under the container, else under spec, else 0 (same \
         upstream path quirk as eff_run_as_user)."]
    ["ka.req.pod.containers.proc_mount", true, OptionalIndex, String, Request, Text,
        R::Container(Containers, Security("procMount")),
        "securityContext.procMount of the containers that set it."]
    ["ka.req.role.rules", true, None, String, Request, Text, R::RoleRules,
        "requestObject.rules: one compact JSON value per rule of a (Cluster)Role."]
    ["ka.req.role.rules.apiGroups", true, OptionalIndex, String, Request, Text, R::RulesField("apiGroups"),
        "apiGroups of every rule, flattened (an index selects one rule)."]
    ["ka.req.role.rules.nonResourceURLs", true, OptionalIndex, String, Request, Text,
        R::RulesField("nonResourceURLs"),
        "nonResourceURLs of every rule, flattened (an index selects one rule)."]
    ["ka.req.role.rules.verbs", true, OptionalIndex, String, Request, Text, R::RulesField("verbs"),
        "verbs of every rule, flattened (an index selects one rule)."]
    ["ka.req.role.rules.resources", true, OptionalIndex, String, Request, Text, R::RulesField("resources"),
        "resources of every rule, flattened (an index selects one rule)."]
    ["ka.req.pod.fs_group", false, None, String, Request, Text, R::PodSecurity("fsGroup"),
        "requestObject.spec.securityContext.fsGroup."]
    ["ka.req.pod.supplemental_groups", true, None, String, Request, Text, R::SupplementalGroups,
        "requestObject.spec.securityContext.supplementalGroups, one value per group id."]
    ["ka.req.pod.containers.add_capabilities", true, OptionalIndex, String, Request, Text,
        R::Container(Containers, AddCapabilities),
        "Per container that sets securityContext.capabilities.add: the whole list as compact JSON (e.g. [\"NET_ADMIN\"])."]
    ["ka.req.service.type", false, None, String, Request, Text, R::SpecMember("type"),
        "requestObject.spec.type of a Service (ClusterIP, NodePort, LoadBalancer, ...)."]
    ["ka.req.service.ports", true, OptionalIndex, String, Request, Text, R::ServicePorts,
        "requestObject.spec.ports as ONE compact JSON value (upstream quirk; the index has no effect)."]
    ["ka.req.pod.volumes.hostpath", true, OptionalIndex, String, Request, Text, R::VolumeHostPaths,
        "hostPath.path of the pod's volumes that are hostPath volumes."]
    ["ka.req.volume.hostpath", false, RequiredKey, String, Request, Text, R::VolumeHasHostPath,
        "Deprecated: true if the hostPath.path of the first volume equals the argument (or, for an argument \
         ending in '*', starts with the rest), else false; no value when that volume has no hostPath."]
    ["ka.req.pod.volumes.flexvolume_driver", true, OptionalIndex, String, Request, Text, R::FlexVolumeDrivers,
        "flexVolume.driver of the pod's volumes that have one."]
    ["ka.req.pod.volumes.volume_type", true, OptionalIndex, String, Request, Text, R::VolumeTypes,
        "Every key other than name of each volume object (hostPath, configMap, secret, ...)."]
    ["ka.resp.name", false, None, String, Response, Text, R::ResponseName,
        "responseObject.metadata.name: the name of the object returned."]
    ["ka.response.code", false, None, String, None, Text, R::ResponseCode,
        "responseStatus.code as text (\"201\"); compares as a string."]
    ["ka.response.reason", false, None, String, None, Text, R::ResponseReason,
        "responseStatus.reason (Forbidden, NotFound, ...)."]
    ["ka.useragent", false, None, String, None, Text, R::UserAgent,
        "userAgent of the client."]
    ["ka.sourceips", true, OptionalIndex, String, Request, Text, R::RulesField("sourceIPs"),
        "Reads requestObject.rules[].sourceIPs (upstream bug: not the event's sourceIPs), so real events have \
         no value."]
    ["ka.cluster.name", false, None, String, None, Text, R::Annotation("cluster_name"),
        "The cluster_name annotation, when the sender adds one."]
    ["ka.req.pod.initContainers.name", true, OptionalIndex, String, Request, Text,
        R::Container(InitContainers, Name),
        "Names of the pod's init containers; no value if one of them has no name."]
    ["ka.req.pod.initContainers.image", true, OptionalIndex, String, Request, Text,
        R::Container(InitContainers, Image),
        "Images of the pod's init containers; no value if one of them has no image."]
    ["ka.req.pod.initContainers.image.repository", true, OptionalIndex, String, Request, Text,
        R::Container(InitContainers, Repository),
        "Images of the init containers cut at the first ':' and then the first '@'."]
    ["ka.req.pod.initContainers.command", true, OptionalIndex, String, Request, Text,
        R::Container(InitContainers, Command),
        "Per init container that has a command: the command joined with spaces."]
    ["ka.req.pod.initContainers.args", true, OptionalIndex, String, Request, Text,
        R::Container(InitContainers, Args),
        "Per init container that has args: its args joined with spaces."]
    ["ka.req.pod.initContainers.privileged", true, OptionalIndex, String, Request, Text,
        R::Container(InitContainers, Security("privileged")),
        "securityContext.privileged of the init containers that set it."]
    ["ka.req.pod.initContainers.allow_privilege_escalation", true, OptionalIndex, String, Request, Text,
        R::Container(InitContainers, Security("allowPrivilegeEscalation")),
        "securityContext.allowPrivilegeEscalation of the init containers that set it."]
    ["ka.req.pod.initContainers.read_only_fs", true, OptionalIndex, String, Request, Text,
        R::Container(InitContainers, Security("readOnlyRootFilesystem")),
        "securityContext.readOnlyRootFilesystem of the init containers that set it."]
    ["ka.req.pod.initContainers.run_as_user", true, OptionalIndex, String, Request, Text,
        R::Container(InitContainers, Security("runAsUser")),
        "securityContext.runAsUser of the init containers that set it."]
    ["ka.req.pod.initContainers.eff_run_as_user", true, OptionalIndex, String, Request, Text,
        R::Container(InitContainers, EffectiveRunAs("runAsUser")),
        "Per init container: runAsUser directly under it, else under spec, else 0 (upstream path quirk)."]
    ["ka.req.pod.initContainers.run_as_group", true, OptionalIndex, String, Request, Text,
        R::Container(InitContainers, Security("runAsGroup")),
        "securityContext.runAsGroup of the init containers that set it."]
    ["ka.req.pod.initContainers.eff_run_as_group", true, OptionalIndex, String, Request, Text,
        R::Container(InitContainers, EffectiveRunAs("runAsGroup")),
        "Per init container: runAsGroup directly under it, else under spec, else 0 (upstream path quirk)."]
    ["ka.req.pod.initContainers.proc_mount", true, OptionalIndex, String, Request, Text,
        R::Container(InitContainers, Security("procMount")),
        "securityContext.procMount of the init containers that set it."]
    ["ka.req.pod.initContainers.add_capabilities", true, OptionalIndex, String, Request, Text,
        R::Container(InitContainers, AddCapabilities),
        "Per init container that sets securityContext.capabilities.add: the whole list as compact JSON."]
    ["ka.req.pod.initContainers.host_port", true, OptionalIndex, String, Request, Text,
        R::Container(InitContainers, HostPort),
        "Per port of each init container: hostPort, or containerPort when there is no hostPort."]
    ["ka.req.pod.ephemeralContainers.name", true, OptionalIndex, String, Request, Text,
        R::Container(EphemeralContainers, Name),
        "Names of the pod's ephemeral containers; no value if one of them has no name."]
    ["ka.req.pod.ephemeralContainers.image", true, OptionalIndex, String, Request, Text,
        R::Container(EphemeralContainers, Image),
        "Images of the pod's ephemeral containers; no value if one of them has no image."]
    ["ka.req.pod.ephemeralContainers.image.repository", true, OptionalIndex, String, Request, Text,
        R::Container(EphemeralContainers, Repository),
        "Images of the ephemeral containers cut at the first ':' and then the first '@'."]
    ["ka.req.pod.ephemeralContainers.command", true, OptionalIndex, String, Request, Text,
        R::Container(EphemeralContainers, Command),
        "Per ephemeral container that has a command: the command joined with spaces."]
    ["ka.req.pod.ephemeralContainers.args", true, OptionalIndex, String, Request, Text,
        R::Container(EphemeralContainers, Args),
        "Per ephemeral container that has args: its args joined with spaces."]
    ["ka.req.pod.ephemeralContainers.privileged", true, OptionalIndex, String, Request, Text,
        R::Container(EphemeralContainers, Security("privileged")),
        "securityContext.privileged of the ephemeral containers that set it."]
    ["ka.req.pod.ephemeralContainers.allow_privilege_escalation", true, OptionalIndex, String, Request, Text,
        R::Container(EphemeralContainers, Security("allowPrivilegeEscalation")),
        "securityContext.allowPrivilegeEscalation of the ephemeral containers that set it."]
    ["ka.req.pod.ephemeralContainers.read_only_fs", true, OptionalIndex, String, Request, Text,
        R::Container(EphemeralContainers, Security("readOnlyRootFilesystem")),
        "securityContext.readOnlyRootFilesystem of the ephemeral containers that set it."]
    ["ka.req.pod.ephemeralContainers.run_as_user", true, OptionalIndex, String, Request, Text,
        R::Container(EphemeralContainers, Security("runAsUser")),
        "securityContext.runAsUser of the ephemeral containers that set it."]
    ["ka.req.pod.ephemeralContainers.eff_run_as_user", true, OptionalIndex, String, Request, Text,
        R::Container(EphemeralContainers, EffectiveRunAs("runAsUser")),
        "Per ephemeral container: runAsUser directly under it, else under spec, else 0 (upstream path quirk)."]
    ["ka.req.pod.ephemeralContainers.run_as_group", true, OptionalIndex, String, Request, Text,
        R::Container(EphemeralContainers, Security("runAsGroup")),
        "securityContext.runAsGroup of the ephemeral containers that set it."]
    ["ka.req.pod.ephemeralContainers.eff_run_as_group", true, OptionalIndex, String, Request, Text,
        R::Container(EphemeralContainers, EffectiveRunAs("runAsGroup")),
        "Per ephemeral container: runAsGroup directly under it, else under spec, else 0 (upstream path quirk)."]
    ["ka.req.pod.ephemeralContainers.proc_mount", true, OptionalIndex, String, Request, Text,
        R::Container(EphemeralContainers, Security("procMount")),
        "securityContext.procMount of the ephemeral containers that set it."]
    ["ka.req.pod.ephemeralContainers.add_capabilities", true, OptionalIndex, String, Request, Text,
        R::Container(EphemeralContainers, AddCapabilities),
        "Per ephemeral container that sets securityContext.capabilities.add: the whole list as compact JSON."]

    // json.* and jevt.*: the json plugin; they also work on events without auditID.
    ["json.value", false, RequiredKey, String, Any, Text, R::JsonValue,
        "The value at a JSON pointer into the event: a string's text, or compact JSON for any other value \
         (null gives the text null); [\"\"] is the whole event."]
    ["json.obj", false, None, String, Response, Text, R::JsonObj,
        "The whole event as JSON indented with two spaces."]
    ["json.rawtime", false, None, String, None, Text, R::JsonRawtime,
        "Event time in nanoseconds since the epoch, as a decimal TEXT (compares as a string)."]
    ["jevt.value", false, RequiredKey, String, Any, Text, R::JsonValue,
        "Same as json.value (older name)."]
    ["jevt.obj", false, None, String, Response, Text, R::JsonObj,
        "Same as json.obj (older name)."]
    ["jevt.rawtime", false, None, String, None, Text, R::JsonRawtime,
        "Same as json.rawtime (older name)."]
}
