//! What the service provider says of itself (RFC 7643, sections 5 to 7):
//! its configuration, its resource types, and the schemas of their
//! attributes. The schemas name exactly the attributes Canopy keeps and
//! answers, so that a client generated from them (or a compliance checker)
//! sends nothing Canopy drops.

use canopy_domain::scim::{ENTERPRISE_USER, GROUP, USER};
use serde_json::{Value, json};

const SPC: &str = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
const RESOURCE_TYPE: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
const SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";

pub fn service_provider_config(base: &str) -> Value {
    json!({
        "schemas": [SPC],
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": true, "maxResults": canopy_app::scim::MAX_RESULTS},
        "changePassword": {"supported": false},
        "sort": {"supported": false},
        "etag": {"supported": true},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "Canopy API key",
            "description": "An installation API key of the role scim_provisioner, made by an admin \
                            (POST /api/v1/api-keys), sent as Authorization: Bearer <key>",
            "primary": true,
        }],
        "meta": {"resourceType": "ServiceProviderConfig", "location": format!("{base}/ServiceProviderConfig")},
    })
}

pub fn resource_types(base: &str) -> Vec<Value> {
    vec![
        json!({
            "schemas": [RESOURCE_TYPE],
            "id": "User",
            "name": "User",
            "description": "A person's Canopy account",
            "endpoint": "/Users",
            "schema": USER,
            "schemaExtensions": [{"schema": ENTERPRISE_USER, "required": false}],
            "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/User")},
        }),
        json!({
            "schemas": [RESOURCE_TYPE],
            "id": "Group",
            "name": "Group",
            "description": "A group of Canopy accounts, owned by the identity provider",
            "endpoint": "/Groups",
            "schema": GROUP,
            "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/Group")},
        }),
    ]
}

/// One attribute's definition, with RFC 7643's defaults spelled out.
struct Attr {
    name: &'static str,
    kind: &'static str,
    multi: bool,
    required: bool,
    mutability: &'static str,
    returned: &'static str,
    uniqueness: &'static str,
    case_exact: bool,
    description: &'static str,
    sub: Vec<Value>,
    canonical: &'static [&'static str],
    reference_types: &'static [&'static str],
}

fn attr(name: &'static str, kind: &'static str, description: &'static str) -> Attr {
    Attr {
        name,
        kind,
        multi: false,
        required: false,
        mutability: "readWrite",
        returned: "default",
        uniqueness: "none",
        case_exact: false,
        description,
        sub: vec![],
        canonical: &[],
        reference_types: &[],
    }
}

impl Attr {
    fn multi(mut self) -> Self {
        self.multi = true;
        self
    }
    fn required(mut self) -> Self {
        self.required = true;
        self
    }
    fn mutability(mut self, m: &'static str) -> Self {
        self.mutability = m;
        self
    }
    fn unique(mut self) -> Self {
        self.uniqueness = "server";
        self
    }
    fn case_exact(mut self) -> Self {
        self.case_exact = true;
        self
    }
    fn sub(mut self, sub: Vec<Attr>) -> Self {
        self.sub = sub.into_iter().map(Attr::json).collect();
        self
    }
    fn canonical(mut self, values: &'static [&'static str]) -> Self {
        self.canonical = values;
        self
    }
    fn references(mut self, types: &'static [&'static str]) -> Self {
        self.reference_types = types;
        self
    }
    fn json(self) -> Value {
        let mut v = json!({
            "name": self.name,
            "type": self.kind,
            "multiValued": self.multi,
            "description": self.description,
            "required": self.required,
            "mutability": self.mutability,
            "returned": self.returned,
        });
        let Some(o) = v.as_object_mut() else { return v };
        if self.kind == "complex" {
            o.insert("subAttributes".into(), Value::Array(self.sub));
        } else {
            o.insert("caseExact".into(), json!(self.case_exact));
            o.insert("uniqueness".into(), json!(self.uniqueness));
        }
        if !self.canonical.is_empty() {
            o.insert("canonicalValues".into(), json!(self.canonical));
        }
        if !self.reference_types.is_empty() {
            o.insert("referenceTypes".into(), json!(self.reference_types));
        }
        v
    }
}

fn schema(base: &str, id: &str, name: &str, description: &str, attributes: Vec<Attr>) -> Value {
    json!({
        "schemas": [SCHEMA],
        "id": id,
        "name": name,
        "description": description,
        "attributes": attributes.into_iter().map(Attr::json).collect::<Vec<_>>(),
        "meta": {"resourceType": "Schema", "location": format!("{base}/Schemas/{id}")},
    })
}

fn s(name: &'static str, description: &'static str) -> Attr {
    attr(name, "string", description)
}

pub fn schemas(base: &str) -> Vec<Value> {
    let user = vec![
        s("userName", "Unique name of the person at the identity provider, e.g. a UPN").required().unique(),
        attr("name", "complex", "The person's name").sub(vec![
            s("formatted", "The full name"),
            s("familyName", "The family name (Canopy's last name)"),
            s("givenName", "The given name (Canopy's first name)"),
            s("middleName", "Middle names"),
            s("honorificPrefix", "Title before the name"),
            s("honorificSuffix", "Suffix after the name"),
        ]),
        s("displayName", "The name shown for the person"),
        s("title", "The person's job title"),
        attr("active", "boolean", "false deactivates the account: it loses all access at once"),
        attr("emails", "complex", "E-mail addresses; the primary one (else the first) is the account's")
            .multi()
            .required()
            .sub(vec![
                s("value", "The address").required(),
                s("type", "work, home or other").canonical(&["work", "home", "other"]),
                attr("primary", "boolean", "Whether this is the account's address"),
            ]),
    ];
    let enterprise = vec![
        s("employeeNumber", "Identifier assigned by the organisation"),
        s("costCenter", "Cost center"),
        s("organization", "Organisation"),
        s("division", "Division"),
        s("department", "Department"),
        attr("manager", "complex", "The person's manager").sub(vec![
            s("value", "The manager's id"),
            attr("$ref", "reference", "The manager's URI").references(&["User"]),
            s("displayName", "The manager's name").mutability("readOnly"),
        ]),
    ];
    let group = vec![
        s("displayName", "The group's name; Canopy makes the group's identifier from it").required().unique(),
        attr("members", "complex", "The group's members: Users").multi().sub(vec![
            s("value", "A member User's id").mutability("immutable").case_exact(),
            attr("$ref", "reference", "The member's URI").mutability("immutable").references(&["User"]),
            s("type", "User").mutability("immutable").canonical(&["User"]),
        ]),
    ];
    vec![
        schema(base, USER, "User", "A person's Canopy account", user),
        schema(base, ENTERPRISE_USER, "EnterpriseUser", "Enterprise attributes, kept as given", enterprise),
        schema(base, GROUP, "Group", "A group of accounts", group),
    ]
}
