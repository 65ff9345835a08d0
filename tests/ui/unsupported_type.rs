use wyrmhole::Model;

#[derive(Model)]
struct Attachment {
    id: i32,
    name: String,
    bytes: Vec<u8>,
}

fn main() {}
