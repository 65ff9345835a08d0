use wyrmhole::Model;

#[derive(Model)]
struct TodoItem {
    id: i32,
    list_id: i32,
    #[wyrm(relation = "list")]
    archived_list: i32,
}

fn main() {}
