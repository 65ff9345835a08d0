use wyrmhole::Model;

#[derive(Model)]
struct TodoItem {
    item_id: i32,
    text: String,
}

fn main() {}
